"""`tunesmith data check FILE` and `tunesmith data prepare INPUT --task T --out DIR`."""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

from tunesmith.audit.duplicates import DEFAULT_SIMILARITY
from tunesmith.audit.report import AuditReport, audit_file
from tunesmith.cli import args as types
from tunesmith.cli.output import print_json, table
from tunesmith.data.check import CheckReport, check_file
from tunesmith.data.examples import TASKS
from tunesmith.data.formats import FORMATS
from tunesmith.data.lines import check_path
from tunesmith.data.prepare import prepare
from tunesmith.data.tasks import task_kind
from tunesmith.errors import InvalidDataError
from tunesmith.modeling import DEFAULT_MODEL, load_tokenizer
from tunesmith.pricing import load_prices

SHOWN_PER_CODE = 10
"""Human output lists this many issues of each kind, then counts the rest (--json lists all)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="check, audit and prepare data sets")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    check = data_sub.add_parser(
        "check", help="run every check on a data file",
        description="Check a data file: OpenAI's chat fine-tuning checks plus encoding, duplicates, "
        "labels and token statistics. Exit 0 valid (warnings allowed), 1 errors found, 2 unusable.")
    check.add_argument("file", help="JSONL (chat, prompt/completion, text/label, tokens/tags), "
                       "CSV or CoNLL")
    check.add_argument("--model", default=DEFAULT_MODEL,
                       help="model whose tokenizer counts tokens (default: %(default)s)")
    check.add_argument("--max-seq-len", type=types.positive_int, default=2048,
                       help="tokens; longer examples are reported as truncated (default: %(default)s)")
    check.add_argument("--train", metavar="FILE",
                       help="the training file, when FILE is a validation or test split: also "
                       "reports examples shared with it and labels it never shows")
    _add_format_args(check)
    check.add_argument("--prices", metavar="FILE", help="price table YAML (default: the shipped one)")
    check.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    check.set_defaults(run=run_check)

    audit = data_sub.add_parser(
        "audit", help="find the examples that are probably wrong",
        description="Audit a data file: probable label errors (confident learning on out-of-fold "
        "predictions), NER spans typed unlike elsewhere, near-duplicates (and, with --train, "
        "test examples that are near-copies of training ones), and outliers in length, script "
        "and language. Advisory: exit 0 when it ran, 2 on unusable input.")
    audit.add_argument("file", help="any file `data check` reads")
    audit.add_argument("--train", metavar="FILE",
                       help="the training file, when FILE is a validation or test split: its "
                       "near-copies in FILE are reported as leaks")
    audit.add_argument("--model", default=DEFAULT_MODEL,
                       help="model whose hidden states add a second label-error probe, one "
                       "forward pass per example (default: %(default)s)")
    audit.add_argument("--no-embeddings", dest="embeddings", action="store_false",
                       help="TF-IDF probe only: no model is loaded (seconds instead of minutes)")
    audit.add_argument("--similarity", type=types.fraction, default=DEFAULT_SIMILARITY,
                       help="near-duplicate threshold: 1 - character edit distance / length, "
                       "after case, spaces and punctuation are removed (default: %(default)s)")
    audit.add_argument("--folds", type=types.positive_int, default=5,
                       help="cross-validation folds for the label probes (default: %(default)s)")
    _add_format_args(audit)
    audit.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    audit.set_defaults(run=run_audit)

    prep = data_sub.add_parser(
        "prepare", help="convert to chat format and split into train/validation/test",
        description="Convert a data file to OpenAI chat JSONL with a system instruction and write "
        "DIR/train.jsonl, DIR/validation.jsonl, DIR/test.jsonl and DIR/task.json.")
    prep.add_argument("input", help="data file in any supported format")
    prep.add_argument("--task", required=True, choices=TASKS)
    prep.add_argument("--out", required=True, metavar="DIR", help="output folder")
    _add_format_args(prep)
    prep.add_argument("--system", help="system instruction (default: the file's own, or one "
                      "generated from the label set)")
    prep.add_argument("--val", type=types.fraction, default=0.1, help="validation fraction (default: 0.1)")
    prep.add_argument("--test", type=types.fraction, default=0.1, help="test fraction (default: 0.1)")
    prep.add_argument("--seed", type=types.seed, default=0, help="split seed (default 0)")
    prep.add_argument("--skip-invalid", action="store_true",
                      help="leave out rows with errors instead of stopping")
    prep.add_argument("--force", action="store_true",
                      help="write into a --out folder that holds other files (only train.jsonl, "
                      "validation.jsonl, test.jsonl and task.json are replaced; never the input)")
    prep.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    prep.set_defaults(run=run_prepare)


def _add_format_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, help="the file's format (default: detected)")
    p.add_argument("--text-field", default="text", help="classification text field/column")
    p.add_argument("--label-field", default="label", help="classification label field/column")


def run_check(args: argparse.Namespace) -> int:
    check_path(args.file)  # a missing file should not wait for a model to load
    prices = load_prices(args.prices)
    tokenizer = load_tokenizer(args.model)
    report = check_file(
        args.file, tokenizer=tokenizer, model=args.model, max_seq_len=args.max_seq_len,
        fmt=args.format, text_field=args.text_field, label_field=args.label_field,
        train_path=args.train, prices=prices)
    if args.json:
        print_json(report.to_dict())
    else:
        print(render_check(report))
    return 0 if report.ok else 1


def render_check(r: CheckReport) -> str:
    out = [(f"{r.path}: {r.format} format, {r.task} task, {r.rows:,} rows, "
           f"{r.examples:,} valid examples")]
    if r.issues:
        out.append(f"\nProblems: {len(r.errors)} errors, {len(r.warnings)} warnings")
        shown: dict[str, int] = defaultdict(int)
        for issue in r.issues:
            shown[issue.code] += 1
            if shown[issue.code] <= SHOWN_PER_CODE:
                out.append(f"  {issue.severity:7}  {issue.render(r.path)}")
        for code, n in shown.items():
            if n > SHOWN_PER_CODE:
                out.append(f"  ... and {n - SHOWN_PER_CODE} more [{code}] (--json lists all)")
    if r.labels:
        what = task_kind(r.task).classes_word.capitalize()
        counts = {k: v for k, v in r.labels.items() if k}  # NER: '' counts examples with none
        total = sum(counts.values()) or 1
        rows = [[k, f"{v:,}", f"{100 * v / total:.1f}%"] for k, v in counts.items()]
        out.append(f"\n{what} ({len(counts)}):")
        out.append(table(rows[:30]))
        if len(rows) > 30:
            out.append(f"  ... and {len(rows) - 30} more")
        if r.labels.get(""):
            out.append(f"  {r.labels['']:,} examples have no entity")
    if r.tokens:
        t = r.tokens
        out.append(f"\nTokens per example ({r.model}, chat template applied):")
        out.append(table([[f"{t.min:,}", f"{t.median:,.0f}", f"{t.p95:,.0f}", f"{t.max:,}",
                           f"{t.mean:,.1f}", f"{t.mean_prompt_tokens:,.1f}",
                           f"{t.mean_completion_tokens:,.1f}", f"{t.total_tokens:,}"]],
                         ["min", "median", "p95", "max", "mean", "prompt", "answer", "total"]))
        out.append(f"  {t.truncated:,} of {t.examples:,} examples exceed --max-seq-len "
                   f"{t.max_seq_len:,}")
    if r.estimate:
        e = r.estimate
        out.append(f"\nOpenAI fine-tuning estimate: n_epochs auto = {e.epochs}, "
                   f"{e.billed_tokens:,} billed tokens (counted with {r.model}'s tokenizer)")
        if e.costs:
            out.append(table([[m, f"${c:,.2f}"] for m, c in e.costs.items()]))
            out.append(f"  prices as of {e.prices_as_of} (override with --prices)")
    verdict = ("valid" if r.ok else f"INVALID: {len(r.errors)} errors") + \
        (f", {len(r.warnings)} warnings" if r.warnings else "")
    out.append(f"\nResult: {verdict}")
    return "\n".join(out)


def run_audit(args: argparse.Namespace) -> int:
    check_path(args.file)
    if args.train is not None:
        check_path(args.train)

    def progress(message: str) -> None:
        if not args.json:
            print(f"  {message}", file=sys.stderr, flush=True)

    report = audit_file(
        args.file, train_path=args.train, fmt=args.format, text_field=args.text_field,
        label_field=args.label_field, model=args.model if args.embeddings else None,
        similarity=args.similarity, folds=max(2, args.folds), progress=progress)
    if args.json:
        print_json(report.to_dict())
    else:
        print(render_audit(report))
    return 0


def render_audit(r: AuditReport, shown: int = SHOWN_PER_CODE) -> str:
    out = [f"{r.file}: {r.format} format, {r.task} task, {r.examples:,} examples"
           + (f" ({r.skipped_rows:,} rows with errors left out; see data check)"
              if r.skipped_rows else "")]
    kind = task_kind(r.task)
    if kind.labelled:
        m = r.methods.get("label_errors", {})
        out.append(f"\nProbable label errors: {len(r.label_errors):,} "
                   f"({', '.join(m.get('classifiers', [])) or 'not judged'}; out-of-fold "
                   f"accuracy {m.get('out_of_fold_accuracy', float('nan')):.3f})")
        rows = [[f"{r.file}:{e.line}", e.label, e.suggested, f"{e.confidence:.2f}"]
                for e in r.label_errors[:shown]]
        if rows:
            out.append(table(rows, ["where", "label", "suggested", "confidence"]))
    if kind.entities:
        out.append(f"\nEntity spans typed unlike elsewhere: {len(r.entity_conflicts):,}")
        rows = [[f"{r.file}:{c.line}", c.text, c.type, c.usual_type,
                 ", ".join(f"{k} {v}" for k, v in c.counts.items())]
                for c in r.entity_conflicts[:shown]]
        if rows:
            out.append(table(rows, ["where", "text", "type", "usually", "counts"]))
    within = [d for d in r.near_duplicates if d.other_file == r.file]
    out.append(f"\nNear-duplicates within the file: {len(within):,}"
               + (f"; of training examples (leaks): {len(r.leaks):,}" if r.train_file else ""))
    rows = [[f"{r.file}:{d.line}", f"{d.other_file}:{d.other_line}",
             "exact" if d.exact else f"{d.similarity:.2f}",
             "same" if d.same_answer else "DIFFERENT"]
            for d in (r.leaks[:shown] + within[:shown])]
    if rows:
        out.append(table(rows, ["where", "copy of", "similarity", "answer"]))
    out.append(f"\nOutliers: {len(r.outliers):,}")
    rows = [[f"{r.file}:{o.line}", o.kind, o.field, o.detail] for o in r.outliers[:shown]]
    if rows:
        out.append(table(rows))
    listed = max(len(r.label_errors), len(r.entity_conflicts), len(within), len(r.leaks),
                 len(r.outliers))
    if listed > shown:
        out.append(f"\n(first {shown} of each shown; --json lists all)")
    out.append(f"\nTook {sum(r.seconds.values()):.1f} s")
    return "\n".join(out)


def run_prepare(args: argparse.Namespace) -> int:
    try:
        result = prepare(
            args.input, args.task, args.out, fmt=args.format, text_field=args.text_field,
            label_field=args.label_field, system=args.system, val=args.val, test=args.test,
            seed=args.seed, skip_invalid=args.skip_invalid, force=args.force)
    except InvalidDataError as e:
        if args.json:
            print_json({"error": {"message": str(e), "exit_code": 1},
                        "issues": [i.to_dict() for i in e.issues]})
        for issue in e.issues[:50]:
            print(f"  {issue.severity:7}  {issue.render(e.path)}", file=sys.stderr)
        if len(e.issues) > 50:
            print(f"  ... and {len(e.issues) - 50} more", file=sys.stderr)
        print(f"tunesmith: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print_json(result.to_dict())
        return 0
    print(f"{args.input}: {result.read:,} rows read -> {sum(result.counts.values()):,} examples "
          f"({result.spec.task})")
    dropped = [f"{n} {what}" for n, what in (
        (result.skipped_invalid, "invalid rows skipped"),
        (result.dropped_duplicates, "duplicates dropped"),
        (result.dropped_conflicts, "conflicting repeats dropped (first answer kept)")) if n]
    if dropped:
        print("  " + ", ".join(dropped))
    for split, n in result.counts.items():
        print(f"  {result.out / (split + '.jsonl')}: {n:,} examples")
    print(f"  {result.out / 'task.json'}: {len(result.spec.labels)} "
          f"{task_kind(result.spec.task).classes_word or 'labels'}")
    if result.spec.system:
        print(f"  system: {result.spec.system}")
    return 0
