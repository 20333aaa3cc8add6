variable "openapi_path" {
  description = "The OpenAPI 2.0 template (infra/openapi.yaml); every $${name} in it must be a key of template_vars."
  type        = string
}

variable "template_vars" {
  description = "Template variables of the document: each function's backend URL (<fn>_url), api_audience and client_sa_email."
  type        = map(string)
}
