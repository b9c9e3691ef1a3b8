"""The README's results section is generated from a run's records: markers, idempotence, figure copies."""

import pandas as pd

from tradeoff.readme import BEGIN, END, write_readme


def _fake_run(root):
    (root / "tables" / "linf-0.3").mkdir(parents=True)
    table = "| classifier | clean |\n|---|---|\n| pgd_at | 88.1 |\n"
    (root / "tables" / "linf-0.3" / "comparison.md").write_text(table)
    (root / "figures" / "linf-0.3").mkdir(parents=True)
    (root / "figures" / "linf-0.3" / "unified_tradeoff.png").write_bytes(b"png-bytes")
    pd.DataFrame({"verdict": ["reproduced", "not testable"]}).to_csv(root / "claims.csv", index=False)
    (root / "claims.md").write_text("## Claims\n\n| claim | verdict |\n|---|---|\n| a | reproduced |\n")
    pd.DataFrame({"dataset": ["digits"], "classifier": ["pgd_at"], "check": ["monotone_eps"],
                  "passed": [False], "reason": ["accuracy rises from 0.1 to 0.3"]}).to_csv(root / "sanity.csv",
                                                                                        index=False)


def test_section_is_replaced_between_the_markers_and_the_rest_is_kept(tmp_path):
    results = tmp_path / "results"
    _fake_run(results)
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nintro\n\n{BEGIN}\nold numbers 89.2%\n{END}\n\n## Layout\nkept\n")
    copied = write_readme(results, readme)
    text = readme.read_text()
    assert text.startswith("# title\n\nintro\n\n") and text.endswith("\n\n## Layout\nkept\n")
    assert "old numbers" not in text
    assert "| pgd_at | 88.1 |" in text and "1 reproduced" in text and "1 not testable" in text
    assert "pgd_at: monotone_eps — accuracy rises" in text
    assert copied == ["docs/figures/linf-0.3-unified_tradeoff.png"]
    assert (tmp_path / "docs" / "figures" / "linf-0.3-unified_tradeoff.png").read_bytes() == b"png-bytes"
    write_readme(results, readme)
    assert readme.read_text() == text  # idempotent


def test_a_page_in_docs_links_its_own_figure_folder_and_shows_the_published_table(tmp_path):
    results = tmp_path / "results"
    _fake_run(results)
    pd.DataFrame([{"dataset": "mnist", "classifier": c, "evaluation": e, "norm": "Linf", "eps": 0.3,
                   "metric": "accuracy", "value": v, "n": n}
                  for c, e, v, n in [("pgd_at", "clean", 0.99, 10000), ("pgd_at", "worst", 0.905, 1000)]]
                 ).to_csv(results / "summary.csv", index=False)
    page = tmp_path / "docs" / "results-mnist.md"
    page.parent.mkdir()
    page.write_text(f"# MNIST\n\n{BEGIN}\n{END}\n")
    copied = write_readme(results, page, tmp_path, "docs/figures/mnist")
    text = page.read_text()
    assert copied == ["docs/figures/mnist/linf-0.3-unified_tradeoff.png"]
    assert "](figures/mnist/linf-0.3-unified_tradeoff.png)" in text
    assert (tmp_path / copied[0]).read_bytes() == b"png-bytes"
    assert "### Next to the published mnist models at linf-0.3" in text
    assert "| ours: pgd_at | 99.00 [" in text and "above PGD-AT's 88.50" in text


def test_the_command_touches_only_the_figures_of_the_pages_repository(tmp_path, monkeypatch):
    from tradeoff.cli import main

    results = tmp_path / "results"
    _fake_run(results)
    here = tmp_path / "checkout"  # the working directory: another checkout with figures of its own
    (here / "docs" / "figures").mkdir(parents=True)
    (here / "docs" / "figures" / "kept.png").write_bytes(b"mine")
    repo = tmp_path / "repo"  # the page's repository
    (repo / "docs" / "figures").mkdir(parents=True)
    (repo / "Snakefile").write_text("")
    (repo / "docs" / "figures" / "stale.png").write_bytes(b"old")
    (repo / "README.md").write_text(f"# t\n\n{BEGIN}\n{END}\n")
    monkeypatch.chdir(here)
    assert main(["readme", "--results", str(results), "--readme", str(repo / "README.md")]) in (0, None)
    assert (here / "docs" / "figures" / "kept.png").read_bytes() == b"mine"
    assert (repo / "docs" / "figures" / "linf-0.3-unified_tradeoff.png").is_file()
    assert not (repo / "docs" / "figures" / "stale.png").exists()


def test_the_seeds_section_marks_every_verdict_that_differs_from_the_one_seed_run(tmp_path):
    from tradeoff.readme import SEEDS_BEGIN, SEEDS_END, update_readme
    from tradeoff.readme import seeds_section as section

    def claims(folder, verdicts, seeds):
        folder.mkdir()
        pd.DataFrame({"id": ["a", "b", "c"][:len(verdicts)], "claim": ["A", "B | b", "C"][:len(verdicts)],
                      "our_effect": "+1.0", "interval": "[0.2, 1.8]", "seeds": "5 seeds: +0.5 to +1.5 (sd 0.4)",
                      "verdict": verdicts}).to_csv(folder / "claims.csv", index=False)
        pd.DataFrame({"seed": seeds}).to_csv(folder / "summary.csv", index=False)

    claims(tmp_path / "five", ["reproduced", "inconclusive", "not testable"], [0, 1, 2, 3, 4, 4])
    claims(tmp_path / "one", ["reproduced", "reproduced"], [0])
    text = section(tmp_path / "five", tmp_path / "one", "docs/claims.md")
    assert text.startswith(SEEDS_BEGIN) and text.rstrip().endswith(SEEDS_END)
    assert "3 claims pooled over 5 training seeds (0, 1, 2, 3, 4)" in text
    assert "[docs/claims.md](docs/claims.md)" in text
    assert "| A | `a` | reproduced | +1.0 [0.2, 1.8] | 5 seeds: +0.5 to +1.5 (sd 0.4) | reproduced |" in text
    assert "| B \\| b | `b` | **inconclusive** |" in text and "| **reproduced** |" in text
    assert "| C | `c` | not testable | +1.0 [0.2, 1.8] | 5 seeds: +0.5 to +1.5 (sd 0.4) | – |" in text
    assert "1 verdict differs from the one-seed run's" in text
    page = tmp_path / "README.md"
    page.write_text(f"# t\n\n{SEEDS_BEGIN}\nold\n{SEEDS_END}\n\nkept\n")
    page.write_text(update_readme(page, text, (SEEDS_BEGIN, SEEDS_END)))
    assert "\nold\n" not in page.read_text() and page.read_text().endswith("\n\nkept\n")
