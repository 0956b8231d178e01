"""The three thoughts (CoT, PoT, EoT): reading, answer parsing, extraction, the sandbox that runs them."""

# The one home of the thought names, in the order of records, flags and tables (the paper's CoT, PoT, EoT).
# ETD's fallback order, EoT then PoT then CoT, is `strategies.ETD_ORDER`.
THOUGHTS = ("cot", "pot", "eot")
