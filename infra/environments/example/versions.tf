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
  # backend "gcs" {
  #   bucket = "my-terraform-state"
  #   prefix = "servo/example"
  # }
}
