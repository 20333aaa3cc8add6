# The API document API Gateway serves: infra/openapi.yaml rendered with the backends' URLs, with the
# operations marked x-servo-internal removed (Scheduler and Cloud Tasks call `timers` directly, Pub/Sub
# push subscriptions the sensor push route of `automation`).
# It uses no provider on purpose: the offline tests render it with the real Terraform binary
# (tests/infra/test_terraform_render.py), so what they check is exactly what the gateway receives.

locals {
  rendered = yamldecode(templatefile(var.openapi_path, var.template_vars))

  public = merge(local.rendered, {
    paths = {
      for path, ops in local.rendered.paths : path => ops
      if !anytrue([for method, op in ops : try(op["x-servo-internal"], false)])
    }
  })
}
