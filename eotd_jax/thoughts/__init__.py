"""The three thoughts (CoT, PoT, EoT): reading, answer parsing, extraction, the sandbox that runs them."""

THOUGHTS = ("cot", "pot", "eot")  # the one home of the thought names, in the student's ETD order of output
