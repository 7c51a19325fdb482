"""`tunesmith compare --data DIR`: prompting vs fine-tuning, measured, priced, recommended."""

from __future__ import annotations

import argparse

from tunesmith.cli.eval import add_endpoint_args, add_judge_args, judge_from_args
from tunesmith.cli.fields import add_fields, config_from_args
from tunesmith.cli.output import print_json, table
from tunesmith.config import METHOD_HELP, EndpointOptions
from tunesmith.cost import Deployment
from tunesmith.report.document import Report
from tunesmith.report.render import payback_rows, summary_rows
from tunesmith.studies.compare import CompareConfig, compare

FIELDS = ["data", "model", "prompt_models", "shots", "methods", "epochs", "out",
          "requests_per_month", "prices", "max_train", "max_test", "mode", "seed",
          "search_examples", "tune", "tune_budget_minutes", "audit", "curve", "curve_sizes",
          "target", "teacher", "incumbent", "goal", "margin", "shutdowns", "quiet"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="prompting vs fine-tuning on the same test split, with a "
                       "report and a recommendation",
                       description="Prompt the --prompt-model(s) (default: --model; openai:NAME "
                       "for a model behind an OpenAI-compatible endpoint), fine-tune --model, "
                       "evaluate all on the same test split, price them and recommend one. "
                       f"Approaches (--method): {METHOD_HELP}.")
    add_fields(p, CompareConfig, FIELDS)
    add_deployment_args(p)
    add_judge_args(p)
    add_endpoint_args(p)
    p.add_argument("--json", action="store_true", help="print report.json on stdout")
    p.set_defaults(run=run)


DEPLOYMENT_FIELDS = ["machine", "capacity", "billing", "engine", "peak_to_average",
                     "hours_per_day", "target_utilization", "cold_start_seconds",
                     "scale_down_seconds", "shared_by"]


def add_deployment_args(p: argparse.ArgumentParser) -> None:
    add_fields(p.add_argument_group("how self-hosted approaches are deployed and billed"),
               Deployment, DEPLOYMENT_FIELDS)


def deployment_from_args(args: argparse.Namespace) -> Deployment:
    return config_from_args(Deployment, args, DEPLOYMENT_FIELDS)


def run(args: argparse.Namespace) -> int:
    report = compare(config_from_args(CompareConfig, args,
                                      FIELDS + list(EndpointOptions.ENDPOINT_FIELDS),
                                      deployment=deployment_from_args(args),
                                      judging=judge_from_args(args)))
    if args.json:
        print_json(report.to_dict())
    else:
        print(render_summary(report))
    return 0


def render_summary(report: Report) -> str:
    header, rows = summary_rows(report)
    rec = report.recommendation
    lines = []
    if report.incumbent:
        inc = report.incumbent
        left = ("date unknown" if inc.get("days_left") is None
                else f"{inc['days_left']} days left")
        lines.append(f"\nreplacing {inc['name']} ({left}); agreement with it:")
        for name, a in inc["agreement"].items():
            test = next((t for t in inc.get("non_inferiority") or [] if t["name"] == name), None)
            line = f"  {name}: {a['measure']} {a['value']:.3f} [{a['low']:.3f}, {a['high']:.3f}]"
            if a.get("kappa") is not None:
                line += f", kappa {a['kappa']:.3f}"
            if test is not None:
                verdict = "non-inferior" if test["non_inferior"] else "not shown non-inferior"
                line += f"; {verdict} at {inc['margin']:g} (lower bound {test['lower']:+.3f})"
            lines.append(line)
    lines += [(f"\n{report.task['task']} · fine-tuned {report.model} · prompted "
              f"{', '.join(report.prompt_models)} · {report.n_train} train / {report.n_test} "
              "test examples"), table(rows, header), "",
             f"Recommendation: {rec.choice}", f"  {rec.reason}"]
    for command in (report.incumbent or {}).get("serve") or []:
        lines.append(f"  serve: {command}")
    for d in report.distillation:
        share = "" if d["share_of_gold"] is None else f" ({100 * d['share_of_gold']:.0f}%)"
        lines.append(f"  {d['name']} reaches {d['score']:.3f} against {d['gold_row']}'s "
                     f"{d['gold_score']:.3f}{share}")
    fines = [f.name for f in report.fine_tuned_rows]
    for name, _, *whens in payback_rows(report):
        for fine, when in zip(fines, whens):
            lines.append(f"  {fine} against {name}: {when}")
    for model, search in report.prompt_searches.items():
        lines.append(f"  best prompt for {model} (chosen on {search['examples']} validation "
                     f"examples): {search['best_description']}")
    lines.append(f"\nReport: {report.out / 'report.html'} (also report.md, report.json)")
    return "\n".join(lines)
