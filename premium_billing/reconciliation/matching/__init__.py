"""Automated reconciliation: match one incoming payment to open invoices.

Pure functions and frozen dataclasses; no framework imports (standard library, rapidfuzz and
the pure invoice rules). The index is built once per run (`CandidateIndex.build`) and then
`match_payment` is called for every payment.

Rules, in order of confidence (DESIGN.md, "Automated reconciliation"):
  1. exact Stripe metadata (`stripe_invoice_id` carries our invoice id or number);
  2. invoice number / RF reference / policy number found in the remittance text (normalised;
     one typo or adjacent transposition tolerated); a quoted invoice number whose invoice
     disagrees on the amount, with no payer backing it, may be a typo naming another real
     invoice: the one invoice one edit away open for the exact amount (`fuzzy_reference`);
  3. a payer already linked (bank account or normalised name) with an exact amount;
  4. fuzzy payer name (rapidfuzz) with an exact amount;
  5. one payment equal to the sum of several open invoices of one policyholder;
  6. partial payments (oldest invoice first) and overpayments (rest to credit);
  7. an underpayment within tolerance of the invoice's total, the rest written off.
Corroboration: a reference match auto-posts only when the payer or the amount agrees; a fuzzy
reference only when exactly one candidate is corroborated; a payer-only match only with an
exact amount. Never across currencies; ambiguity goes to suspense with ranked candidates.

Money invariant of every matched or partial decision:
  sum(allocations) + credit == payment.amount, and for each invoice
  allocation + write_off <= amount_due (== for a settled invoice).
Write-offs are not money received: they close a short payment's remainder on the one invoice
it fell short on, only as posting accepts them (`premium_billing.invoicing.rules.
within_tolerance` of that invoice's total; see `plans.spread_plan`).

Modules, each importing only those above it:
  scores     every score, threshold and bound, named;
  types      inputs (PaymentFacts, OpenInvoice, Policyholder, PayerLink), MatchSettings and
             the output (MatchDecision, Candidate);
  normalise  references, accounts and names as keys and tokens;
  similarity payer name against policyholder name;
  index      CandidateIndex: exact and one-edit reference lookups, pools, name blocks;
  plans      allocation plans over candidate invoices (exact, several, spread, write-off);
  rules      each matching rule, as scored options;
  candidates the ranked candidates of a payment left for a person, each with its reason;
  decide     match_payment: the rules in order, and the decision.
"""

from __future__ import annotations

from premium_billing.reconciliation.matching.candidates import rank_candidates
from premium_billing.reconciliation.matching.decide import match_payment
from premium_billing.reconciliation.matching.index import CandidateIndex
from premium_billing.reconciliation.matching.normalise import (
    name_tokens,
    normalize_account,
    normalize_name,
)
from premium_billing.reconciliation.matching.similarity import name_similarity
from premium_billing.reconciliation.matching.types import (
    Candidate,
    MatchDecision,
    MatchSettings,
    OpenInvoice,
    Outcome,
    PayerLink,
    PaymentFacts,
    Policyholder,
)

__all__ = [
    "Candidate",
    "CandidateIndex",
    "MatchDecision",
    "MatchSettings",
    "OpenInvoice",
    "Outcome",
    "PayerLink",
    "PaymentFacts",
    "Policyholder",
    "match_payment",
    "name_similarity",
    "name_tokens",
    "normalize_account",
    "normalize_name",
    "rank_candidates",
]
