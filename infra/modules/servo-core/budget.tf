# A monthly budget on the project, when a billing account is given: a runaway loop of retries or a
# flood of finalize events shows up as cost first. The identity applying needs
# roles/billing.costsManager on the billing account (infra/README.md).

resource "google_billing_budget" "servo" {
  count           = var.billing_account == null ? 0 : 1
  billing_account = var.billing_account
  display_name    = "Servo (${var.name_prefix}) in ${var.project_id}"

  budget_filter {
    projects = ["projects/${local.project_number}"]
  }

  amount {
    specified_amount {
      units = tostring(var.monthly_budget)
    }
  }

  threshold_rules {
    threshold_percent = 0.5
  }
  threshold_rules {
    threshold_percent = 0.9
  }
  threshold_rules {
    threshold_percent = 1.0
  }

  all_updates_rule {
    monitoring_notification_channels = local.notification_channels
    disable_default_iam_recipients   = false
  }

  depends_on = [time_sleep.apis]
}
