"""`claim:`: what a claim spec reproduces, checked at load like every section; a mistake names its field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from e2e import ROOT

from tuner.cli import main
from tuner.results.claim import claim_from
from tuner.spec import Claim, SpecError, load_spec

EDGE = ROOT / "search_spaces" / "claim_sam_edge.yaml"


def _with_claim(tmp_path: Path, claim: object, source: Path = EDGE) -> Path:
    raw = yaml.safe_load(source.read_text())
    raw["claim"] = claim
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


def test_every_claim_spec_says_what_it_claims() -> None:
    claims = {p.stem: load_spec(p).claim for p in sorted((ROOT / "search_spaces").glob("claim_*.yaml"))}
    assert all(isinstance(c, Claim) and c.source for c in claims.values()), claims
    edge = claims["claim_sam_edge"]
    assert (edge.metric, edge.by, edge.measure) == ("diag/lambda_over_edge", ("lr", "rho"), "final")
    assert edge.expect["sam"] == (0.99, 1.09)  # Long & Bartlett's band
    assert claims["claim_balancedness"].by == ("alpha",)
    assert claims["claim_ire_valley"].metric == "diag/u"
    assert claims["claim_admire_tiny_lm"].measure == "to_target" and claims["claim_admire_tiny_lm"].expect == {
        "admire": 0.5}


def test_the_stored_spec_gives_the_same_claim_back(tmp_path: Path) -> None:
    spec = load_spec(EDGE)
    saved = spec.to_dict(include_space=False)
    assert claim_from(saved) == spec.claim  # what the report reads from the experiment's spec.yaml
    again = tmp_path / "again.yaml"  # what `run` saves and `resume` loads
    again.write_text(yaml.safe_dump(saved, allow_unicode=True))
    assert load_spec(again).claim == spec.claim
    assert claim_from({"claim": None}) is None


@pytest.mark.parametrize(("claim", "expected"), [
    ({"metric": "diag/lambda_over_edge", "by": ["lr", "rh"], "source": "x"}, "claim.by.1: unknown value 'rh'"),
    ({"metric": "lambda", "source": "x"}, "claim.metric: unknown metric 'lambda'"),
    ({"metric": "diag/u", "source": "x", "expect": {"asam": 1.0}}, "claim.expect.asam: unknown key 'asam'"),
    ({"metric": "diag/u", "source": "x", "expect": {"sam": [1.09, 0.99]}}, "claim.expect.sam: must be the paper's"),
    ({"metric": "diag/u", "source": "x", "expect": {"sam": [1.0]}}, "claim.expect.sam: must be the paper's"),
    ({"metric": "diag/u"}, "claim.source: is required"),
    ({"measure": "to_target", "by": ["lr"], "source": "x"}, "claim.by: measure to_target has one value per method"),
    ({"measure": "to_target", "metric": "diag/u", "source": "x"}, "claim.metric: measure to_target reads the spec's"),
    ({"metric": "diag/u", "source": "x", "measure": "best"}, "claim.measure: "),
    ({"metrc": "diag/u", "source": "x"}, "claim.metrc: unknown key 'metrc'"),
])
def test_a_mistake_in_the_claim_names_its_field(tmp_path: Path, claim: dict, expected: str) -> None:
    path = _with_claim(tmp_path, claim)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert expected in str(err.value), str(err.value)


def test_validate_refuses_a_bad_claim_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _with_claim(tmp_path, {"metric": "diag/u", "by": ["width"], "source": "x"})
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {path}") and "claim.by.0" in err, err
