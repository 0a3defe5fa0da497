"""The inbound edge for Stripe: verify the signature (`views`), store each event once and
dispatch it to what it means for billing (`inbox` → `stripe_billing.events`), and drain
what was queued (`drain`)."""
