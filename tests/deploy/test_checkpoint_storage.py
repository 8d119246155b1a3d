"""The production overlay renders with checkpoints on a ReadWriteMany volume (its
default) and with the checkpoints-in-redis component enabled as its comment says."""

from __future__ import annotations

import pytest

from deploy.rendering import PRODUCTION_WITH_REDIS_CHECKPOINTS, Rendered, render


@pytest.mark.parametrize("kustomization", ["overlays/production",
                                           PRODUCTION_WITH_REDIS_CHECKPOINTS])
def test_production_renders_with_checkpoints_on_a_volume_or_in_redis(
        kustomization: str) -> None:
    rendered = Rendered(render(kustomization))
    directory = rendered.settings()["GRAFLOW_DIST_CHECKPOINT_DIR"]
    volumes = rendered.get("Deployment", "graflow-coordinator")["spec"]["template"]["spec"][
        "volumes"]
    checkpoints = next(v for v in volumes if v["name"] == "checkpoints")
    if kustomization == PRODUCTION_WITH_REDIS_CHECKPOINTS:
        assert directory.startswith("redis://graflow-redis:6379/")
        assert not rendered.has("PersistentVolumeClaim", "graflow-checkpoints")
        assert "persistentVolumeClaim" not in checkpoints and "emptyDir" in checkpoints
    else:
        assert directory.startswith("/")
        claim = rendered.get("PersistentVolumeClaim", "graflow-checkpoints")
        assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
        assert "ReadWriteMany" in claim["spec"]["accessModes"]
        assert checkpoints["persistentVolumeClaim"]["claimName"] == "graflow-checkpoints"
