"""`tunesmith migrate inventory|record`: see which fine-tuned models die when, and record how one
answers before it does."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm.auto import tqdm

from tunesmith.cli.eval import add_endpoint_args
from tunesmith.cli.fields import add_fields, config_from_args
from tunesmith.cli.output import print_json, table
from tunesmith.config import EndpointOptions
from tunesmith.endpoints.spec import resolve_api
from tunesmith.shutdowns import load_shutdowns
from tunesmith.studies.migrate import Inventory, download, inventory
from tunesmith.studies.record import RecordConfig, prepare_recording, record

RECORD_FIELDS = ["model", "inputs", "out", "system", "text_field", "temperature", "max_tokens",
                 "logprobs", "max_cost", "prices", "shutdowns", "estimate_model"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("migrate", help="replace a fine-tuned OpenAI model before it is retired",
                       description="Before a hosted fine-tune is retired: list every fine-tuned "
                       "model a key can see with its days left (inventory), then record how one "
                       "answers your inputs (record) for `compare --incumbent`.")
    commands = p.add_subparsers(dest="migrate_command", required=True, metavar="SUBCOMMAND")

    inv = commands.add_parser(
        "inventory", help="every fine-tuned model and job the key sees, most urgent first",
        description="List the key's fine-tuned models and fine-tuning jobs (models.list and "
        "fine_tuning.jobs.list, every page) with base model, suffix, hyperparameters, files, "
        "trained tokens and the days left until the base model is retired (shutdowns.yaml; a "
        "base it does not name is 'date unknown'). Configured like the openai client "
        "(OPENAI_BASE_URL, OPENAI_API_KEY).")
    g = inv.add_argument_group("endpoint")
    g.add_argument("--base-url", help="OpenAI-compatible API URL, up to /v1 (default: "
                   "$OPENAI_BASE_URL, else OpenAI's)")
    g.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the API "
                   "key (default: OPENAI_API_KEY); the key is never printed or stored")
    inv.add_argument("--download", metavar="DIR",
                     help="also save each job's JSON, training and validation files under "
                     "DIR/JOB/ and run `data check` on them (files the API no longer returns "
                     "are listed as missing)")
    inv.add_argument("--shutdowns", metavar="FILE",
                     help="shutdown table YAML (default: the shipped one)")
    inv.add_argument("--json", action="store_true", help="one JSON document on stdout")
    inv.set_defaults(run=run_inventory)

    rec = commands.add_parser(
        "record", help="record how a fine-tuned model answers your inputs",
        description="Send every input to the model as production does and keep each full "
        "answer: OUT/golden.jsonl (or one file per split of a prepared folder), "
        "answers.jsonl, record.json. Cached as it goes: a killed run continues where it "
        "stopped. The key is never written anywhere.")
    add_fields(rec, RecordConfig, RECORD_FIELDS)
    add_endpoint_args(rec)
    rec.add_argument("--quiet", action="store_true", help="no progress bar")
    rec.add_argument("--json", action="store_true", help="print record.json on stdout")
    rec.set_defaults(run=run_record)


def run_inventory(args: argparse.Namespace) -> int:
    endpoint = resolve_api(args.base_url, args.api_key_env)
    found = inventory(endpoint, load_shutdowns(args.shutdowns))
    if args.download:
        download(endpoint, found, Path(args.download))
    if args.json:
        print_json(found.to_dict())
    else:
        print(render_inventory(found))
    return 0


def render_inventory(found: Inventory) -> str:
    if not found.fine_tunes:
        return f"{found.endpoint}: no fine-tuned models or fine-tuning jobs for this key."
    rows = []
    for f in found.fine_tunes:
        left = ("date unknown" if f.days_left is None else
                f"{f.days_left} days ({f.shutdown})" if f.days_left >= 0 else
                f"retired {f.shutdown}")
        files = ", ".join(x for x in (f.training_file, f.validation_file) if x)
        rows.append([f.model or f"(job {f.job})", f.base, left, f.job_status or "",
                     "" if f.trained_tokens is None else f"{f.trained_tokens:,}", files])
    lines = [table(rows, ["model", "base", "answers until", "job", "trained tokens", "files"])]
    if found.jobs_end:
        lines.append(f"new fine-tuning jobs stop on {found.jobs_end['date']} "
                     f"({found.jobs_end['days_left']} days; {found.jobs_end['source']})")
    lines.append(f"dates from {found.shutdowns}; check the source before relying on one")
    for f in found.fine_tunes:
        for param, d in f.downloads.items():
            if "missing" in d:
                lines.append(f"  {f.job} {param} {d['file']}: missing ({d['missing']})")
            else:
                c = d["check"]
                verdict = "valid" if c["ok"] else f"{c['errors']} errors"
                lines.append(f"  {f.job} {param} -> {d['path']}: {c['examples']} examples, "
                             f"{verdict}, {c['warnings']} warnings")
                lines += [f"    {e}" for e in c["first_errors"]]
    return "\n".join(lines)


def run_record(args: argparse.Namespace) -> int:
    cfg = config_from_args(RecordConfig, args,
                           RECORD_FIELDS + list(EndpointOptions.ENDPOINT_FIELDS))
    rows, spec, plan, when = prepare_recording(cfg)
    left = ("date unknown" if when["days_left"] is None else
            f"{when['days_left']} days left (shutdown {when['shutdown']})")
    cost = ("price unknown (the table does not name the base model)" if plan.cost_usd is None
            else f"up to ${plan.cost_usd:,.2f} at {when['base']}'s fine-tuned prices")
    say = (lambda message: None) if args.json else (
        lambda message: print(message, file=sys.stderr, flush=True))
    say(f"{cfg.model}: {left}. {plan.requests:,} requests ({plan.cached:,} already recorded), "
        f"~{plan.prompt_tokens:,} prompt tokens + up to {plan.max_answer_tokens:,} answer "
        f"tokens, {cost}")
    bar = tqdm(total=plan.requests, unit="answer", disable=args.quiet or args.json,
               dynamic_ncols=True)
    try:
        done = record(cfg, rows, spec, plan, when, progress=lambda: bar.update(1))
    finally:
        bar.close()
    if args.json:
        print_json(done.to_dict())
        return 0
    spent = "price unknown" if done.cost_usd is None else f"${done.cost_usd:,.4f}"
    print(f"recorded {done.answered:,} answers of {cfg.model} in {done.seconds:.0f} s "
          f"({done.from_cache:,} from the cache), {done.prompt_tokens:,} prompt + "
          f"{done.completion_tokens:,} answer tokens, {spent}")
    if done.stopped:
        print(f"  {done.stopped}")
    for name, path in done.files.items():
        print(f"  {name}: {path}")
    print(f"  record.json: {done.out / 'record.json'}")
    return 1 if done.stopped else 0
