"""The one redaction helper every error path uses (warehouse, PostgreSQL, instance, alerts)."""

from nbp_assets.alerts.channels import redact as channel_redact
from nbp_assets.core.redaction import redact


def test_every_secret_is_masked_longest_first_and_absent_ones_are_ignored():
    text = "login failed for s3cret-key-pass with key s3cret-key and password pw"
    out = redact(text, ["s3cret-key", None, "", "s3cret-key-pass", "pw"])
    assert out == "login failed for *** with key *** and password ***"
    assert "s3cret" not in out


def test_channels_leave_fragments_too_short_to_be_secrets():
    assert (
        channel_redact("POST https://hooks.example/T0K3N port 25", ["T0K3N", "25"])
        == "POST https://hooks.example/*** port 25"
    )
