"""What Terraform renders for roles (terraform/modules/settings), for tests that start a function
as deployed: every role variable and the token audiences, so only what such a test leaves out is
missing."""

from __future__ import annotations

ROLE_SETTINGS = {
    "ION_ROLE_VIEWERS": "domain:example.com",
    "ION_ROLE_OPERATORS": "user:oncall@example.com",
    "ION_ROLE_ADMINS": "user:admin@example.com",
    "ION_ROLE_SCHEDULER": "serviceAccount:ion-ops-scheduler@p.iam.gserviceaccount.com",
    "ION_ROLE_TASKS": "serviceAccount:ion-ops-fanout-tasks@p.iam.gserviceaccount.com",
    "ION_ROLE_PUSH": "serviceAccount:ion-ops-push@p.iam.gserviceaccount.com",
    "ION_AUTH_AUDIENCES": "https://function-123456789.us-central1.run.app",
    "ION_IAP_AUDIENCE": "/projects/123456789/global/backendServices/*",
}
