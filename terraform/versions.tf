terraform {
  required_version = ">= 1.11" # write-only arguments (the watchdog PagerDuty key, monitoring.tf)
  required_providers {
    google = {
      source = "hashicorp/google"
      # Exact pins: the schemas tests/test_terraform_schema.py checks (devtools/terraform_schema.py).
      version = "7.46.1"
    }
    # Only for google_project_service_identity (the IAP service agent, public_access.tf).
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "7.46.1"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "2.8.1"
    }
  }
  # Configure the state bucket at init: terraform init -backend-config="bucket=<state bucket>"
  backend "gcs" {
    prefix = "ion-ops"
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}
