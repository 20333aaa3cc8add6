output "public" {
  description = "The rendered document without its internal operations, as an object."
  value       = local.public
}

output "public_json" {
  description = "The public document as JSON (what API Gateway receives, base64-encoded)."
  value       = jsonencode(local.public)
}

output "document" {
  description = "The whole rendered document, internal operations included."
  value       = local.rendered
}
