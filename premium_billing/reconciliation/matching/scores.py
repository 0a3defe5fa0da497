"""Every score, threshold and bound of the matching engine, in one place.

A score is the engine's confidence (0..1) that a candidate is what the payment pays; a
candidate posts by itself only at `AUTO_THRESHOLD` or above (`MatchSettings.auto_threshold`
can move it), and only when no other candidate comes within `AMBIGUITY_MARGIN`. Scores
below the threshold only rank the candidates a person sees in suspense.

The values are tuned together on the seeded benchmark (bench/bench_matching.py): change one
and run it again.
"""

from __future__ import annotations

from fractions import Fraction

# ------------------------------------------------------------------------------------------- scale

CERTAIN = 1.0  # the top of every score: Stripe metadata, a return, a duplicate, a learned link
NO_EVIDENCE = 0.0  # the bottom of every score: nothing to compare (no name, no candidate)
SCORE_DIGITS = 4  # a decision's and a candidate's score are reported rounded to this many digits

# -------------------------------------------------------------------------- MatchSettings defaults

AUTO_THRESHOLD = 0.90  # a candidate scoring at least this may post without a person
AMBIGUITY_MARGIN = 0.03  # the best candidate must beat a different runner-up by this much
MAX_NAME_CANDIDATES = 25  # this many similar policyholder names or more: a name match is chance
MAX_CANDIDATES = 5  # ranked candidates kept on a decision (shown in suspense)
DUPLICATE_WINDOW_DAYS = 2  # same amount, reference and payer within this many days: a duplicate
WRITEOFF_TOLERANCE_ABS = 100  # a remainder of at most this (minor units) may be written off ...
WRITEOFF_TOLERANCE_PCT = Fraction(1, 100)  # ... or of at most this share of the invoice total

# --------------------------------------------------------------------------------- name similarity

INITIAL_MATCH = 0.96  # an initial ("J") against a holder word with that first letter
OMITTED_TOKEN_PENALTY = 0.04  # taken off per holder name word the payer left out (middle name)

# --------------------------------------------------------------------- rule: reference in the text

EXACT_INVOICE_REFERENCE = 0.99  # an invoice number or RF reference found as printed
EXACT_POLICY_NUMBER = 0.97  # only a policy number found as printed (names a policy, not an invoice)
FUZZY_RF_REFERENCE = 0.95  # an RF reference one edit away: its check digits vouch for the fix
FUZZY_NUMBER = 0.93  # an invoice or policy number one edit away (a neighbour is one edit too)
QUOTED_NEIGHBOUR = 0.91  # the one invoice one edit from a quoted number, exact amount, no payer
ONE_SIDED_PENALTY = 0.02  # taken off when only the payer, or only the amount, backs the reference
THIRD_PARTY_PENALTY = 0.04  # taken off an exact RF with the right amount from another payer
UNCORROBORATED_EXACT = 0.5  # a reference found as printed that neither payer nor amount backs
UNCORROBORATED_FUZZY = 0.45  # a corrected reference that neither payer nor amount backs
PAYER_CONTRADICTS_BELOW = 0.6  # a given payer name scoring below this is someone else's

# ------------------------------------------------------------------------ rule: learned payer link

LINKED_ACCOUNT = 0.97  # a learned bank account of the policyholder, exact amount
LINKED_NAME = 0.94  # a learned payer name of the policyholder, exact amount

# -------------------------------------------------------------------------------- rule: payer name

NAME_CANDIDATE_MIN = 0.8  # a policyholder whose name scores below this is no candidate at all
NAME_MATCH_MAX = 0.97  # a name with an exact amount scores its similarity, at most this
NAME_NO_PLAN_FACTOR = 0.5  # a name without an exact amount: its similarity times this (ranks only)

# --------------------------------------------------------------------------------- caps (any rule)

NO_PLAN_CAP = 0.6  # a candidate the amount cannot be allocated to scores at most this
CONTRADICTED_CAP = 0.6  # a payer match the remittance text points away from scores at most this

# ----------------------------------------------------------------------------------- search bounds

MAX_JOINED_RUNS = 8  # a reference is looked for in at most this many neighbouring text runs
MAX_CHANCE_FITS = 0.05  # invoices one edit away expected open for the amount by chance, at most
MAX_COMBINATION_POOL = 12  # two or three of a holder's invoices are combined only up to this many

# ------------------------------------------------------------------- suspense candidates (ranking)
# A candidate a person sees in suspense scores REFERENCE_WEIGHT x its reference closeness +
# PAYER_WEIGHT x its payer closeness + AMOUNT_WEIGHT x its amount closeness (each 0..1): two
# kinds of evidence agreeing outrank one kind that is a little closer.

REFERENCE_WEIGHT = 0.4  # of the reference closeness in a candidate's score
PAYER_WEIGHT = 0.3  # of the payer closeness (a learned link 1, else the name similarity)
AMOUNT_WEIGHT = 0.3  # of the amount closeness
REF_EXACT = 1.0  # the text quotes the invoice's number or RF reference
REF_RF_ONE_EDIT = 0.9  # one edit from its RF reference (the check digits vouch for the fix)
REF_ONE_EDIT = 0.8  # one edit from its invoice number
REF_NEIGHBOUR = 0.5  # one edit from its number or RF when the text quotes another one as printed
REF_POLICY = 0.7  # the text quotes its policy number
REF_POLICY_ONE_EDIT = 0.5  # one edit from its policy number
AMOUNT_EQUAL = 1.0  # the amount is what is due
AMOUNT_WITHIN_TOLERANCE = 0.6  # short by a remainder posting would write off
AMOUNT_SEVERAL = 0.8  # with others of the policyholder's invoices, the amount pays them exactly
AMOUNT_OTHER = 0.4  # any other amount: this times the smaller over the larger
CANDIDATE_NAME_MIN = 0.75  # a payer name scoring below this is no payer evidence
CANDIDATE_NAME_POOL = 100  # more alike names than this: only those due exactly the amount
