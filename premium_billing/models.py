"""Every table of the service in one metadata: what Alembic and the schema test compare."""

from __future__ import annotations

from premium_billing.audit import models as audit_models
from premium_billing.collections import models as collections_models
from premium_billing.dashboard import models as dashboard_models
from premium_billing.db.base import Base
from premium_billing.http import models as http_models
from premium_billing.invoicing import models as invoicing_models
from premium_billing.jobs import models as jobs_models
from premium_billing.ledger import models as ledger_models
from premium_billing.notifications import models as notifications_models
from premium_billing.outbound import models as outbound_models
from premium_billing.payments import models as payments_models
from premium_billing.policies import models as policies_models
from premium_billing.portal import models as portal_models
from premium_billing.reconciliation import models as reconciliation_models
from premium_billing.stripe_billing import models as stripe_models

metadata = Base.metadata
FEATURE_MODELS = (
    audit_models,
    collections_models,
    dashboard_models,
    http_models,
    invoicing_models,
    jobs_models,
    ledger_models,
    notifications_models,
    outbound_models,
    payments_models,
    policies_models,
    portal_models,
    reconciliation_models,
    stripe_models,
)
