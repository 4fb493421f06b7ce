# One EC2 instance running k3s, reachable on a stable Elastic IP, that deploys the scwadd chart
# from its own user data. Secrets never pass through Terraform: the instance reads them from SSM.

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

# Canonical's own pointer to the current Ubuntu 24.04 LTS image for this region.
data "aws_ssm_parameter" "ubuntu_ami" {
  name = "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
}

data "aws_vpc" "default" {
  count   = var.subnet_id == null ? 1 : 0
  default = true
}

data "aws_subnets" "default" {
  count = var.subnet_id == null ? 1 : 0

  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.default[0].id]
  }

  filter {
    name   = "default-for-az"
    values = ["true"]
  }
}

data "aws_subnet" "selected" {
  id = var.subnet_id != null ? var.subnet_id : sort(data.aws_subnets.default[0].ids)[0]
}

locals {
  public_url       = "https://${var.domain_name}"
  redirect_uri     = "${local.public_url}/OAuthCallback"
  notification_uri = "${local.public_url}/espi/notify"
  ssm_parameter_arn = format(
    "arn:%s:ssm:%s:%s:parameter%s",
    data.aws_partition.current.partition, var.aws_region, data.aws_caller_identity.current.account_id,
    var.ssm_parameter_prefix,
  )

  # Every value the user data needs; templates/*.tftpl use nothing else.
  bootstrap_vars = {
    k3s_version          = var.k3s_version
    cert_manager_version = var.cert_manager_version
    domain_name          = var.domain_name
    acme_email           = var.acme_email
    acme_server          = var.acme_server
    aws_region           = var.aws_region
    ssm_parameter_prefix = var.ssm_parameter_prefix
    chart_repository     = var.chart_repository
    chart_version        = var.chart_version
    image_registry       = var.image_registry
    image_tag            = var.image_tag
  }
}

data "cloudinit_config" "bootstrap" {
  gzip          = true
  base64_encode = true

  part {
    filename     = "cloud-config.yaml"
    content_type = "text/cloud-config"
    content      = templatefile("${path.module}/templates/cloud-config.yaml.tftpl", local.bootstrap_vars)
  }

  part {
    filename     = "bootstrap.sh"
    content_type = "text/x-shellscript"
    content      = templatefile("${path.module}/templates/bootstrap.sh.tftpl", local.bootstrap_vars)
  }
}

resource "aws_security_group" "scwadd" {
  name        = "${var.name}-instance"
  description = "scwadd: HTTPS and the HTTP redirect from anywhere, SSH only from ssh_ingress_cidr"
  vpc_id      = data.aws_subnet.selected.vpc_id

  tags = { Name = "${var.name}-instance" }
}

resource "aws_vpc_security_group_ingress_rule" "http" {
  # Port 80 must be public: Let's Encrypt's HTTP-01 challenge, and the redirect to HTTPS.
  #checkov:skip=CKV_AWS_260:public HTTP is only the ACME challenge and the redirect to HTTPS
  security_group_id = aws_security_group.scwadd.id
  description       = "HTTP: ACME HTTP-01 challenges and the permanent redirect to HTTPS"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

resource "aws_vpc_security_group_ingress_rule" "https" {
  security_group_id = aws_security_group.scwadd.id
  description       = "HTTPS: customers, PG&E's notifications and the operator"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  count             = var.ssh_ingress_cidr == null ? 0 : 1
  security_group_id = aws_security_group.scwadd.id
  description       = "SSH from the operator's network only"
  cidr_ipv4         = var.ssh_ingress_cidr
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.scwadd.id
  description       = "HTTPS out: PG&E's API, SSM, image and chart registries, Let's Encrypt, k3s releases"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "http" {
  security_group_id = aws_security_group.scwadd.id
  description       = "HTTP out: Ubuntu's package mirrors (signed by apt) during the first boot"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

resource "aws_vpc_security_group_egress_rule" "dns" {
  security_group_id = aws_security_group.scwadd.id
  description       = "DNS to the VPC resolver"
  cidr_ipv4         = "${cidrhost(data.aws_vpc.selected.cidr_block, 2)}/32"
  ip_protocol       = "udp"
  from_port         = 53
  to_port           = 53
}

data "aws_vpc" "selected" {
  id = data.aws_subnet.selected.vpc_id
}

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

# The instance may read the secrets under ssm_parameter_prefix, decrypt them through SSM, and
# nothing else.
data "aws_iam_policy_document" "read_secrets" {
  statement {
    sid       = "ReadScwaddSecrets"
    actions   = ["ssm:GetParameter", "ssm:GetParameters"]
    resources = ["${local.ssm_parameter_arn}/*"]
  }

  statement {
    sid     = "DecryptThroughSsmOnly"
    actions = ["kms:Decrypt"]
    resources = [format("arn:%s:kms:%s:%s:key/*",
    data.aws_partition.current.partition, var.aws_region, data.aws_caller_identity.current.account_id)]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ssm.${var.aws_region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  name               = "${var.name}-instance"
  description        = "scwadd instance: reads its secrets from SSM Parameter Store"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
}

resource "aws_iam_role_policy" "read_secrets" {
  name   = "read-scwadd-secrets"
  role   = aws_iam_role.instance.id
  policy = data.aws_iam_policy_document.read_secrets.json
}

resource "aws_iam_instance_profile" "instance" {
  name = "${var.name}-instance"
  role = aws_iam_role.instance.name
}

resource "aws_instance" "scwadd" {
  ami                     = data.aws_ssm_parameter.ubuntu_ami.value
  instance_type           = var.instance_type
  subnet_id               = data.aws_subnet.selected.id
  vpc_security_group_ids  = [aws_security_group.scwadd.id]
  iam_instance_profile    = aws_iam_instance_profile.instance.name
  key_name                = var.ssh_key_name
  user_data_base64        = data.cloudinit_config.bootstrap.rendered
  disable_api_termination = var.deletion_protection
  ebs_optimized           = true
  monitoring              = true

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
    # One hop: the host's AWS CLI reaches the metadata service, pods (one hop further) do not.
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size_gb
    encrypted             = true
    delete_on_termination = true
  }

  lifecycle {
    # A newer Ubuntu image must not replace the instance (and its data) on the next apply;
    # user data runs on the first boot only, so a change to it is applied by replacing
    # deliberately: terraform apply -replace=aws_instance.scwadd (after a backup).
    ignore_changes = [ami, user_data_base64]
  }

  tags = { Name = var.name }
}

resource "aws_eip" "scwadd" {
  domain = "vpc"
  tags   = { Name = var.name }
}

# The address, and so the redirect URI's DNS record, survives stops, reboots and replacement.
resource "aws_eip_association" "scwadd" {
  instance_id   = aws_instance.scwadd.id
  allocation_id = aws_eip.scwadd.id
}

resource "aws_route53_record" "scwadd" {
  count   = var.route53_zone_id == null ? 0 : 1
  zone_id = var.route53_zone_id
  name    = var.domain_name
  type    = "A"
  ttl     = 300
  records = [aws_eip.scwadd.public_ip]
}
