terraform {
  # Provider-free; the offline tests run it with the Terraform bundled in .venv (1.0.x), so nothing
  # here may need a newer language version.
  required_version = ">= 1.0.0"
}
