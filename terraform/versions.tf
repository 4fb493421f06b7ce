# Pinned so that a plan made today and one made next year build the same machine.
terraform {
  required_version = ">= 1.6.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "= 5.82.2"
    }
    cloudinit = {
      source  = "hashicorp/cloudinit"
      version = "= 2.3.5"
    }
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge({ Application = "scwadd", ManagedBy = "terraform" }, var.tags)
  }
}
