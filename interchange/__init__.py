"""Interchange with other cap-table tools: the Open Cap Table Format (OCF) 1.2.0.

An adapter, like the CLI and the projections: it reads the log (export) or turns a bundle into
the command file's objects (import), and never touches the domain's aggregates itself, so every
rule is enforced by the one application service.
"""
