"""equity-ledger benchmarks: `python -m bench` (full run) or `python -m bench --smoke` (CI).

See bench/README.md. Modules: generate (synthetic plans), backends (stores and raw baselines),
measure (child processes: wall time, peak RSS), suite (the run and its targets), report
(markdown), profile_apply (where the apply path spends its time).
"""
