terraform {
  # 1.11: write-only arguments (the task-token key never enters state or a saved plan, secrets.tf).
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
}
