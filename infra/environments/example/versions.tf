terraform {
  required_version = ">= 1.5.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.14"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.14"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # Keep state remote and access-controlled: it holds the generated task-token and dispatch secrets.
  # Configure with `terraform init -backend-config=bucket=<state bucket> -backend-config=prefix=servo`.
  backend "gcs" {}
}
