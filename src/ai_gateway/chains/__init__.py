"""Chains (docs/chains.md): named, versioned lists of prompt template steps, each step's output
becoming variables of the later ones."""
