terraform {
  required_version = ">= 1.11.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.37"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.37"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
    time = {
      source  = "hashicorp/time"
      version = "~> 0.12"
    }
  }

  # Keep state remote and access-controlled. The task-token key is write-only (never in state), the
  # dispatch secret is; so is everything a plan shows.
  # Configure with `terraform init -backend-config=bucket=<state bucket> -backend-config=prefix=servo`.
  backend "gcs" {}
}
