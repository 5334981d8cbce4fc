"""Behaviour-engine flows: fine-tune (RAFT data → gate → LoRA → challenger), promote, rollback."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from dualengine.settings import Settings
from flows.locks import training_slot
from flows.steps import data
from flows.steps import finetune as bs
from flows.steps import gate as gate_steps
from flows.steps import serving as serving_steps


def live_index_info(settings: Settings) -> dict[str, Any]:
    from dualengine.resolve import index_alias, live_index
    from dualengine.weaviate_client import weaviate_client
    from tasks.index_versions import read_manifest

    with weaviate_client(settings) as client:
        live = live_index(client, index_alias(settings))
        manifest = read_manifest(client, live)
    return {"collection": live, "index_version": manifest.get("index_version", "")}


@flow(name="finetune", log_prints=True)
def finetune_flow(
    profile: str | None = None,
    corpus: str | None = None,
    train: str | None = None,
    eval: str | None = None,  # noqa: A002 - the CLI option and the Prefect form field
    resume: bool = False,
    accelerate_config: str | None = None,
    num_processes: int = 1,
    max_steps: int | None = None,
    instructions: str | None = None,
) -> dict[str, Any]:
    """Build RAFT data against the live index (plus optional (instruction, output) rows),
    validate it, train a LoRA adapter and register it as `challenger` (run `promote` to let
    the gate decide about `champion`); one at a time under the `dualengine-training` limit."""
    settings = Settings.for_profile(profile)
    if max_steps is not None:
        settings = settings.with_training_override(max_steps=max_steps)
    with training_slot():  # one finetune at a time on every worker (RAFT data, GPU, registry)
        paths, version = data.prepare_data(settings, corpus, train, eval)
        index = live_index_info(settings)
        raft = bs.build_raft_data(settings, paths, instructions)
        bs.validate_training_data(settings, raft)
        training = bs.train_adapter(
            settings, raft, index, version, resume, accelerate_config, num_processes
        )
        challenger = bs.register_challenger(settings, training, index, version)
    return {
        "data_version": version,
        "index": index,
        "training": training,
        "challenger_version": challenger,
    }


@flow(name="promote", log_prints=True)
def promote_flow(profile: str | None = None, version: str | None = None) -> dict[str, Any]:
    """Gate the challenger (or a given version) against champion and base; move `champion`
    only when it wins by the margin with no guardrail regression."""
    from tasks import registry
    from tasks.data import sample_dataset_paths

    settings = Settings.for_profile(profile)
    name = settings.config().registry.model_name
    if version is None:
        found = registry.version_by_alias(name, registry.CHALLENGER)
        if found is None:
            raise LookupError(f"model '{name}' has no challenger: run `dualengine finetune`")
        version = str(found.version)
    paths = sample_dataset_paths(settings.data_dir, settings.params())
    decision = gate_steps.promotion_gate(settings, paths, version)
    if decision["promoted"]:
        decision["hybrid"] = serving_steps.register_hybrid_model(settings)
    return decision


@flow(name="rollback-model", log_prints=True)
def rollback_model_flow(profile: str | None = None) -> dict[str, str]:
    """Move `champion` back to the version that held it before."""
    from tasks import registry

    settings = Settings.for_profile(profile)
    name = settings.config().registry.model_name
    before, after = registry.rollback_champion(name)
    serving_steps.register_hybrid_model(settings)
    create_markdown_artifact(
        key="model-rollback",
        markdown=f"## Model rollback\n\n`{name}` champion: v{before} → v{after}",
    )
    return {"model_name": name, "from": before, "to": after}


@flow(name="build-raft-data", log_prints=True)
def build_raft_flow(profile: str | None = None) -> dict[str, str]:
    """Only the RAFT data (and its gate): the DVC `raft` stage runs this."""
    from tasks.data import sample_dataset_paths

    settings = Settings.for_profile(profile)
    paths = sample_dataset_paths(settings.data_dir, settings.params())
    raft = bs.build_raft_data(settings, paths)
    bs.validate_training_data(settings, raft)
    return raft
