"""The SP-Ctrl paper's numbers (Tables 1–3, Figs. 6–7) as reference records; installed as spbench.paper_results."""
