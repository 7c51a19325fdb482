"""Writing a `Report` as report.json (for scripts), report.md and a self-contained report.html
(figures embedded as data URIs, no external requests)."""

from __future__ import annotations

import base64
import html
import json
import math
import shutil
from pathlib import Path

from tunesmith.atomic import write_text
from tunesmith.cost import CLOSE, VOLUMES, cheaper, volume_grid
from tunesmith.data.tasks import task_kind
from tunesmith.report.document import Report
from tunesmith.report.plots import plot_confusion, plot_per_type

DISAGREEMENTS = 8


def money(value: float, digits: int = 4) -> str:
    return "price unknown" if math.isnan(value) else f"{value:,.{digits}f}"


def summary_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """The approaches table: header and one row of strings per approach."""
    kind = task_kind(report.task["task"])
    header = ["approach", kind.metric_name]
    if kind.labelled:
        header.append("accuracy")
    volume = report.requests_per_month
    header += ["invalid", "latency/ex", "tokens/request", "runs on",
               f"$/month at {_volume(volume)}", "$/1k requests", "one-off $"]
    rows = []
    for r in report.results:
        c = report.costs[r.name]
        row = [r.name, f"{r.score:.3f}"]
        if kind.labelled:
            row.append(f"{r.metrics['accuracy']:.3f}")
        monthly = c.monthly(volume)
        per_1k = monthly / volume * 1000 if volume else c.per_1k_requests_usd
        row += [f"{r.invalid}/{r.n}", f"{1000 * r.latency_s:.0f} ms",
                f"{r.prompt_tokens:.0f} + {r.completion_tokens:.1f}", c.where,
                money(monthly, 2), money(per_1k), money(c.one_off_usd)]
        rows.append(row)
    return header, rows


def payback_header(report: Report) -> list[str]:
    return ["prompting approach", "runs on"] + [f"{f.name} against it"
                                                for f in report.fine_tuned_rows]


def payback_rows(report: Report) -> list[list[str]]:
    """Per prompting approach and fine-tune: which costs less over the first year at which
    monthly volumes (the curves of cost.png, 1,000 to 100M requests a month)."""
    rows = []
    lo, hi = VOLUMES
    for name, per_fine in report.break_even.items():
        c = report.costs[name]
        row = [name, c.where]
        for fine in report.fine_tuned_rows:
            f = report.costs[fine.name]
            points = per_fine.get(fine.name) or []
            if not (c.known and f.known):
                when = "unknown (a model has no price; name it with --prices)"
            elif not points:
                sides = {cheaper(c, f, v) for v in volume_grid(41)} - {0}
                if not sides:
                    when = (f"within {CLOSE:.0%} of each other at every volume from {lo:,.0f} "
                            f"to {hi:,.0f} requests/month")
                else:
                    who = "the fine-tune" if sides == {1} else "prompting"
                    when = (f"{who} costs less (or within {CLOSE:.0%}) at every volume from "
                            f"{lo:,.0f} to {hi:,.0f} requests/month")
            else:
                when = "; ".join(f"{'the fine-tune' if p['cheaper_above'] == fine.name else 'prompting'}"
                                 f" costs less above ~{_volume(p['requests_per_month'])}/month"
                                 for p in points)
            row.append(when)
        rows.append(row)
    return rows


TABLE_VOLUMES = (1e3, 1e4, 1e5, 1e6, 1e7, 1e8)
"""Monthly volumes of the cost-against-volume table (the plot's span, a column per decade)."""


def volume_header() -> list[str]:
    return ["approach", "runs on"] + [f"$/month at {_volume(v)}" for v in TABLE_VOLUMES]


def volume_rows(report: Report) -> list[list[str]]:
    """Every approach's monthly cost as deployed at each of TABLE_VOLUMES (the one-off cost
    spread over the first year), the numbers cost.png draws."""
    rows = []
    for r in report.results:
        c = report.costs[r.name]
        rows.append([r.name, c.where] + [money(c.first_year(v) / 12, 2) for v in TABLE_VOLUMES])
    return rows


def _volume(requests: float) -> str:
    """`~2.4k`, `~1.3M` requests: two figures are all a crossing of estimates is worth."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if requests >= size:
            value = requests / size
            return f"{value:.0f}{unit}" if value >= 10 else f"{value:.2g}{unit}"
    return f"{requests:.0f}"


def tune_sections(report: Report) -> list[tuple[str, list[list[str]]]]:
    """Per fine-tuned approach trained with --tune: why its settings won, and every trial."""
    out = []
    for name, t in report.training.items():
        tune = t.get("tune")
        if not tune:
            continue
        rows = [[f"x{tr['lr_factor']:g}", f"{tr['lr']:.2g}" if tr["lr"] else "",
                 " ".join(f"{m:.3f}" for m in tr["epochs"]), str(tr["best_epoch"] or ""),
                 "" if tr["best_metric"] is None else f"{tr['best_metric']:.3f}", tr["stopped"]]
                for tr in tune["trials"]]
        out.append(((f"{name}: {tune['why']} ({tune['examples']} validation examples, "
                    f"{tune['seconds'] / 60:.1f} of {tune['budget_minutes']:g} budget minutes)"),
                    rows))
    return out


TUNE_HEADER = ["lr", "value", "validation metric per epoch", "best epoch", "best", "stopped"]


def training_lines(report: Report) -> list[str]:
    return [f"{name}: {t['epochs']} epochs, {t['steps']} steps, {t['trained_tokens']:,} tokens in "
            f"{t['seconds']:.0f} s; validation loss {t['initial_valid_loss'] or float('nan'):.4f} "
            f"-> {t['final_valid_loss'] or float('nan'):.4f}." for name, t in report.training.items()]


def search_rows(report: Report) -> dict[str, tuple[str, list[list[str]]]]:
    """Per prompted model: a caption and one row per prompt configuration tried on validation."""
    out = {}
    for model, search in report.prompt_searches.items():
        caption = (f"{model}: {len(search['candidates'])} prompt configurations on "
                   f"{search['examples']} validation examples ({search['metric']}); the best "
                   f"became `best prompt`: {search['best_description']}")
        rows = [[c["stage"], c["description"], f"{c['score']:.3f}",
                 "best" if c["config"] == search["best"] else ""] for c in search["candidates"]]
        out[model] = (caption, rows)
    return out


def disagreements(report: Report) -> list[dict]:
    """Test examples where the fine-tuned model and the best prompting approach disagree."""
    fine, best = report.fine_tuned, report.best_prompt
    out = []
    for i, (a, b) in enumerate(zip(best.predictions, fine.predictions)):
        if a != b:
            out.append({"input": fine.texts[i], "gold": fine.gold[i], best.name: a, fine.name: b})
        if len(out) >= DISAGREEMENTS:
            break
    return out


Section = tuple[str, list[str], list[tuple[list[str], list[list[str]]]]]
"""A report section: title, paragraphs, tables (header, rows)."""


def audit_section(report: Report) -> Section | None:
    """`## Data audit`: what `data audit` found in the training split and the test split."""
    if not report.audit:
        return None
    paragraphs, tables = [], []
    train, test = report.audit.get("train"), report.audit.get("test")
    if train:
        kind = task_kind(train["task"])
        found = (f"{train['label_errors']:,} probable label errors" if kind.labelled else
                 f"{train['entity_conflicts']:,} entity spans typed unlike elsewhere"
                 if kind.entities else None)
        paragraphs.append(
            f"Training split ({train['examples']:,} examples): "
            + (f"{found}, " if found else "")
            + f"{train['near_duplicates']:,} near-duplicates, {train['outliers']:,} outliers "
            f"({train['seconds']:.1f} s; `tunesmith data audit {train['file']}` lists them all).")
        if train["top_label_errors"]:
            tables.append((["line", "label", "suggested", "confidence"],
                           [[str(e["line"]), e["label"], e["suggested"], f"{e['confidence']:.2f}"]
                            for e in train["top_label_errors"]]))
        if train["top_entity_conflicts"]:
            tables.append((["line", "text", "type", "usually"],
                           [[str(c["line"]), c["text"], c["type"], c["usual_type"]]
                            for c in train["top_entity_conflicts"]]))
    if test:
        paragraphs.append(
            f"Test split ({test['examples']:,} examples): {test['leaks']:,} are near-copies of "
            "training examples" + (" (the test score may flatter every approach that saw the "
                                   "training split)" if test["leaks"] else "") + ".")
        if test["top_leaks"]:
            tables.append((["test line", "training line", "similarity", "answer"],
                           [[str(d["line"]), str(d["other_line"]),
                             "exact" if d["exact"] else f"{d['similarity']:.2f}",
                             "same" if d["same_answer"] else "different"]
                            for d in test["top_leaks"]]))
    return "Data audit", paragraphs, tables


def curve_section(report: Report) -> Section | None:
    """`## Learning curve` (compare --curve)."""
    if not report.curve:
        return None
    doc = report.curve
    rows = [[f"{p['n']:,}", f"{p['metric']:.3f}", f"[{p['low']:.3f}, {p['high']:.3f}]"]
            for p in doc["points"]]
    return ("Learning curve", [(f"Fine-tuned ({doc['method']}) on nested subsets of the training "
                               "split; prompting rows as bands.")] + curve_sentences(doc),
            [(["examples", doc["metric"], "95% interval"], rows)])


def curve_sentences(doc: dict) -> list[str]:
    """The claims and their backtest, in words (`tunesmith curve` and the compare report)."""
    out = []
    if doc.get("fit"):
        fit = doc["fit"]
        out.append(f"Fit: {fit['form']} ({fit['chosen_by']}), RMSE {fit['rmse']:.4f} on the "
                   "points")
    if doc.get("examples_needed"):
        out.append(doc["examples_needed"]["text"])
    if doc.get("beats_best_prompt_from"):
        out.append(doc["beats_best_prompt_from"]["text"])
    bt = doc.get("backtest")
    if bt:
        out.append(f"Backtest: fitted without the {bt['n']:,}-example point, the curve predicted "
                   f"{bt['predicted']:.3f} there; measured {bt['measured']:.3f} (error "
                   f"{bt['error']:+.3f})")
    elif doc.get("backtest_note"):
        out.append(f"Backtest: {doc['backtest_note']}")
    if doc.get("skipped_sizes"):
        out.append("Not measured (budget): " + ", ".join(f"{n:,}" for n in doc["skipped_sizes"]))
    return out


def replacing_section(report: Report) -> Section | None:
    """`## Replacing MODEL (N days left)` (compare --incumbent): first in the report."""
    inc = report.incumbent
    if not inc:
        return None
    left = ("date unknown" if inc.get("days_left") is None else
            f"{inc['days_left']} days left" if inc["days_left"] >= 0 else
            f"retired {inc['shutdown']}")
    kind = task_kind(report.task["task"])
    tests = {t["name"]: t for t in inc.get("non_inferiority") or []}
    measure = next(iter(inc["agreement"].values()), {}).get("measure", "agreement")
    header = ["option", f"{kind.metric_name} (gold)", f"{measure} with the incumbent", "95% interval"]
    if kind.labelled:
        header.append("kappa")
    if tests:
        header.append(f"non-inferior at {inc['margin']:g} (lower bound)")
    header += ["$/1k requests", "one-off $"]
    rows = []
    for r in report.results:
        c = report.costs[r.name]
        a = inc["agreement"].get(r.name)
        row = [r.name, f"{r.score:.3f}", "(itself)" if a is None else f"{a['value']:.3f}",
               "" if a is None else f"[{a['low']:.3f}, {a['high']:.3f}]"]
        if kind.labelled:
            row.append("" if a is None or a.get("kappa") is None else f"{a['kappa']:.3f}")
        if tests:
            t = tests.get(r.name)
            row.append("" if t is None else
                       f"{'yes' if t['non_inferior'] else 'no'} ({t['lower']:+.3f})")
        row += [money(c.per_1k_requests_usd), money(c.one_off_usd)]
        rows.append(row)
    until = inc["shutdown"] or "a date the shutdown table does not give"
    paragraphs = [f"{inc['name']} answers until {until}"
                  + (f" ({inc['source']})" if inc.get("source") else "")
                  + f". Its answers to the {report.n_test} test inputs were recorded; every "
                  "option is scored against the gold answers and against the incumbent's."]
    if inc.get("reference_is_incumbent"):
        paragraphs.append("The test split's answers are the incumbent's own (no gold labels): "
                          "the gold metric here is agreement with the incumbent.")
    choice = report.recommendation.choice
    paragraphs.append(f"Recommended: {choice}. {report.recommendation.reason}")
    if inc.get("serve"):
        paragraphs.append("To serve it where the incumbent was: " + " · ".join(inc["serve"]))
    return f"Replacing {inc['name'].removeprefix('incumbent (').removesuffix(')')} ({left})", \
        paragraphs, [(header, rows)]


def judge_section(report: Report) -> Section | None:
    """`## Judge` (compare --judge): the figures, the checks, the prompt, its cost, and pairs
    with their verdicts in both orders."""
    j = report.judge
    if not j:
        return None
    c = j["checks"]
    verdict = ("trusted: its win rates are the task metric of the recommendation"
               if c["trusted"] else "NOT trusted: its verdicts are shown, but the "
               "recommendation decides on the reference metrics")
    words = [f"Judged by `{j['judge']}` ({j['mode']}) against {j['against']} on {j['n']} test "
             f"inputs, every pair in both orders: {verdict}.",
             f"Checks: the verdict kept when the answers swap places in "
             + ("n/a (grading)" if c["order_agreement"] is None else
                f"{c['order_agreement']:.0%} of pairs")
             + f"; the reference preferred over a degraded copy in "
             + (f"{c['probe_pass']:.0%}" if c["probe_pass"] is not None else "n/a")
             + f" of {c['probes']} probes (needs {c['min_probe']:.0%}: "
             + ", ".join(f"{k} {v:.0%}" for k, v in c["probe_by_kind"].items()) + ")"
             + ("" if c["gold_agreement"] is None else
                f"; agreement with gold where one answer is right {c['gold_agreement']:.0%} of "
                f"{c['gold_pairs']} pairs") + ".",
             *c["why"],
             f"Cost: {j['cost_basis']}" + ("" if j["cost_usd"] is None else
                                          f" = ${j['cost_usd']:,.4f}")
             + f"; {j['invalid']} answers were no verdict; {j['seconds']:.0f} s.",
             f"The judge's instructions: {j['system_prompt']}"]
    if j["mode"] == "pairwise":
        header = ["approach", "win / tie / loss", "invalid", "win rate (ties half)", "95% interval",
                  "length-controlled", "order kept"]
        rows = [[name, f"{r['wins']} / {r['ties']} / {r['losses']}", str(r["invalid"]),
                 f"{r['win_rate']:.3f}", f"[{r['low']:.3f}, {r['high']:.3f}]",
                 f"{r['length_controlled']:.3f}", f"{r['order_agreement']:.0%}"]
                for name, r in j["rows"].items()]
    else:
        header = ["answers", "mean grade (1-10)", "95% interval", "invalid"]
        rows = [[name, f"{r['mean']:.2f}", f"[{r['low']:.2f}, {r['high']:.2f}]", str(r["invalid"])]
                for name, r in j["rows"].items()]
    tables = [(header, rows)]
    if j["examples"]:
        tables.append((["approach", "input", "answer", "baseline", "answer first", "answer second",
                        "outcome"],
                       [[e["approach"], e["input"][:120], e["answer"][:160], e["baseline"][:160],
                         str(e["verdict_answer_first"]), str(e["verdict_answer_second"]),
                         e["outcome"]] for e in j["examples"]]))
    return "Judge", words, tables


def _sections(report: Report) -> list[Section]:
    return [s for s in (judge_section(report), audit_section(report), curve_section(report))
            if s is not None]


def _show(value) -> str:
    if value is None:
        return "(invalid)"
    if isinstance(value, list):
        return json.dumps([{"text": t, "type": k} for t, k in value], ensure_ascii=False)
    return str(value)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def distillation_lines(report: Report) -> list[str]:
    """`compare --teacher`: what training on the teacher's answers reaches."""
    out = []
    for d in report.distillation:
        share = "" if d["share_of_gold"] is None else f", {100 * d['share_of_gold']:.0f}% of it"
        out.append(f"{d['name']} (trained on {d['trained_on']} answers) reaches {d['score']:.3f} "
                   f"against {d['gold_row']}'s {d['gold_score']:.3f}{share}.")
    return out


def _notes(report: Report) -> list[str]:
    return distillation_lines(report) + [f"{r.name}: {note}" for r in report.results
                                         for note in r.notes]


def write_report(report: Report) -> None:
    out = report.out
    figures: dict[str, Path] = {}
    for i, (name, t) in enumerate(report.training.items()):
        target = out / ("loss.png" if i == 0 else f"loss-{t['method']}.png")
        if (Path(t["run"]) / "loss.png").is_file():
            shutil.copyfile(Path(t["run"]) / "loss.png", target)
            figures[f"Loss curve of {name} (training and validation)"] = target
    figures["Total cost against requests served"] = out / "cost.png"
    kind = task_kind(report.task["task"])
    if kind.labelled:
        fine = report.fine_tuned
        plot_confusion(fine.metrics["confusion"], out / "confusion.png",
                       f"{fine.name}: confusion matrix on the test split")
        figures["Confusion matrix (fine-tuned)"] = out / "confusion.png"
    elif kind.entities:
        plot_per_type({r.name: r.metrics["per_type"] for r in report.results},
                      out / "per_type_f1.png")
        figures["Entity F1 per type"] = out / "per_type_f1.png"
    if report.curve:
        figures["Learning curve"] = out / "curve" / "curve.png"
    figures = {k: v for k, v in figures.items() if v.is_file()}

    write_text(out / "report.json", json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    header, rows = summary_rows(report)
    rec = report.recommendation
    diffs = [[c.other, f"{c.diff:+.3f}", f"[{c.low:+.3f}, {c.high:+.3f}]",
              "yes" if c.significant else "no"] for c in rec.comparisons]
    examples = disagreements(report)
    openai_rows = [[name, c.where, f"{c.per_1k_requests_usd:.4f}", f"{c.one_off_usd:.2f}"]
                   for name, c in report.openai_costs.items()]
    paybacks = payback_rows(report)
    searches = search_rows(report)
    md = ["# tunesmith report: prompt it or fine-tune it?\n",
          (f"Task **{report.task['task']}** ({len(report.task['labels'])} labels) · fine-tuned `{report.model}` "
           f"· prompted {', '.join(f'`{m}`' for m in report.prompt_models)} · "
           f"{report.n_train} training / {report.n_test} test examples · {report.created}\n")]
    replacing = replacing_section(report)
    if replacing:
        title, paragraphs, tables = replacing
        md += [f"## {title}\n", *(p + "\n" for p in paragraphs),
               *(_md_table(h, r) + "\n" for h, r in tables)]
    md += [f"## Recommendation: **{rec.choice}**\n", rec.reason + "\n",
          f"Rule: {rec.rule}\n", "## Approaches on the test split\n", _md_table(header, rows),
          "\n" + _cost_words(report) + "\n",
          "## When fine-tuning pays back\n",
          _md_table(payback_header(report), paybacks),
          "\n## Cost against volume (first year / 12: the one-off spread over it)\n",
          _md_table(volume_header(), volume_rows(report))]
    for caption, rows_ in searches.values():
        md += ["\n## The prompt, chosen on the validation split\n", caption + "\n",
               _md_table(["stage", "configuration", "validation score", ""], rows_)]
    md += [(f"\n## Differences to {rec.comparisons[0].best if rec.comparisons else ''} "
            "(95% paired bootstrap)\n"),
           _md_table(["approach", "difference", "95% interval", "significant"], diffs),
           "\n## The same requests at OpenAI's list prices (reference)\n",
           _md_table(["approach", "priced as", "$/1k requests", "one-off $"], openai_rows),
           "\n## Training\n", *(f"- {line}" for line in training_lines(report)), ""]
    for caption, rows_ in tune_sections(report):
        md += ["## Settings chosen on the validation split\n", caption + "\n",
               _md_table(TUNE_HEADER, rows_), ""]
    for title, paragraphs, tables in _sections(report):
        md += [f"## {title}\n", *(p + "\n" for p in paragraphs)]
        md += [_md_table(h, r) + "\n" for h, r in tables]
    notes = _notes(report)
    if notes:
        md += ["## Notes\n"] + [f"- {n}" for n in notes] + [""]
    if examples:
        keys = list(examples[0])
        md += ["## Examples where the approaches disagree\n",
               _md_table(keys, [[_show(e[k])[:120] for k in keys] for e in examples])]
    md += [f"\n![{name}]({path.relative_to(out)})" for name, path in figures.items()]
    write_text(out / "report.md", "\n".join(md) + "\n")
    write_text(out / "report.html", _html(report, header, rows, diffs, openai_rows, paybacks,
                                          searches, notes, examples, figures))


def _cost_words(report: Report) -> str:
    rates = "; ".join(f"{m}: {v['prefill_tokens_per_s']:,.0f} prefill / "
                      f"{v['decode_tokens_per_s']:,.0f} decode tokens/s"
                      for m, v in report.throughput.items())
    deployed = next((c for c in report.costs.values() if c.self_hosted and c.deployment), None)
    how = ""
    if deployed is not None:
        month = deployed.month(report.requests_per_month)
        how = (f" At {report.requests_per_month:,} requests/month a self-hosted row is billed "
               f"as deployed ({deployed.deployment.describe()}): "
               + (f"{month.machines} machine(s) x {deployed.deployment.open_hours:,.0f} h"
                  if month.machines else f"{month.billed_hours:,.2f} billed hours")
               + f" for {deployed.name}; $/1k requests is that month's bill over its requests, "
               "and cost.png draws every row's first year from 1,000 to 100M requests a month.")
    return (f"Self-hosted rows run on `{report.hardware}`; a request's busy time comes from its "
            f"tokens at the model's measured rates at the serving batch ({rates}), so the "
            f"capacity does not move with the machine's load; latency is measured and shown "
            f"beside.{how} Endpoint rows are priced from the tokens the endpoint reported, at the "
            f"price table's entry for the model. Prices as of {report.prices_as_of}.")


def _html_table(header: list[str], rows: list[list[str]], highlight: str | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = ""
    for row in rows:
        cls = ' class="chosen"' if highlight and row and row[0] == highlight else ""
        body += f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html(report, header, rows, diffs, openai_rows, paybacks, searches, notes, examples,
          figures) -> str:
    rec = report.recommendation
    imgs = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(path.read_bytes()).decode()}"><figcaption>{html.escape(name)}'
        "</figcaption></figure>" for name, path in figures.items())
    example_table = ""
    if examples:
        keys = list(examples[0])
        example_table = ("<h2>Examples where the approaches disagree</h2>"
                         + _html_table(keys, [[_show(e[k]) for k in keys] for e in examples]))
    search_html = "".join(
        f"<h2>The prompt, chosen on the validation split</h2><p>{html.escape(caption)}</p>"
        + _html_table(["stage", "configuration", "validation score", ""], rows_)
        for caption, rows_ in searches.values())
    notes_html = ("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
                  + "</ul>") if notes else ""
    training = "".join(f"<li>{html.escape(line)}</li>" for line in training_lines(report))
    tuned = "".join(f"<h2>Settings chosen on the validation split</h2><p>{html.escape(c)}</p>"
                    + _html_table(TUNE_HEADER, r) for c, r in tune_sections(report))
    prompted = ", ".join(f"<code>{html.escape(m)}</code>" for m in report.prompt_models)
    replacing = replacing_section(report)
    first = "" if replacing is None else (
        f"<h2>{html.escape(replacing[0])}</h2>"
        + "".join(f"<p>{html.escape(p)}</p>" for p in replacing[1])
        + "".join(_html_table(h, r) for h, r in replacing[2]))
    extra = "".join(f"<h2>{html.escape(title)}</h2>"
                    + "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
                    + "".join(_html_table(h, r) for h, r in tables)
                    for title, paragraphs, tables in _sections(report))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tunesmith report</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: .6em 0 1.2em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }} tr.chosen td {{ background: #e8f4e8; font-weight: 600; }}
.rec {{ border-left: 5px solid #2a8a2a; background: #f4faf4; padding: .6em 1em; }}
.rule {{ color: #555; font-size: 13px; }} figure {{ margin: 1em 0; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>Prompt it or fine-tune it?</h1>
<p>Task <b>{html.escape(report.task['task'])}</b> ({len(report.task['labels'])} labels) ·
fine-tuned <code>{html.escape(report.model)}</code> · prompted {prompted} · {report.n_train}
training / {report.n_test} test examples · {html.escape(report.created)}</p>
{first}
<div class="rec"><h2>Recommendation: {html.escape(rec.choice)}</h2><p>{html.escape(rec.reason)}</p>
<p class="rule">Rule: {html.escape(rec.rule)}</p></div>
<h2>Approaches on the test split</h2>
{_html_table(header, rows, rec.choice)}
<p>{html.escape(_cost_words(report))}</p>
<h2>When fine-tuning pays back</h2>
{_html_table(payback_header(report), paybacks)}
<h2>Cost against volume (first year / 12: the one-off spread over it)</h2>
{_html_table(volume_header(), volume_rows(report))}
{search_html}
<h2>Differences to the best approach (95% paired bootstrap)</h2>
{_html_table(["approach", "difference", "95% interval", "significant"], diffs)}
<h2>The same requests at OpenAI's list prices (reference)</h2>
{_html_table(["approach", "priced as", "$/1k requests", "one-off $"], openai_rows)}
<h2>Training</h2><ul>{training}</ul>
{tuned}
{extra}
{notes_html}
{example_table}
<h2>Figures</h2>{imgs}
<script>
// Marks the page once every figure has loaded (used by tunesmith's rendering test).
window.addEventListener("load", () => {{
  const ok = [...document.images].filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute("data-figures", ok === document.images.length ? ok + " loaded" : "failed");
}});
</script>
</body></html>
"""
