output "public_url" {
  description = "Where customers start."
  value       = local.public_url
}

output "redirect_uri" {
  description = "Register this as the redirect URI of the PG&E Share My Data registration."
  value       = local.redirect_uri
}

output "notification_uri" {
  description = "Register this as the notification URI (BatchList) of the PG&E registration."
  value       = local.notification_uri
}

output "elastic_ip" {
  description = "The stable public address; domain_name's A record must point here."
  value       = aws_eip.scwadd.public_ip
}

output "instance_id" {
  description = "For SSM Session Manager: aws ssm start-session --target <instance_id>."
  value       = aws_instance.scwadd.id
}
