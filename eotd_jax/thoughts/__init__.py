"""The three thoughts (CoT, PoT, EoT): answer parsing, extraction, the sandbox that runs them."""
