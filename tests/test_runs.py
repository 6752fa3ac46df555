from rsr.runs import redact


def test_redact_hides_secrets_and_keeps_settings():
    config = {"sampler": {"api_key": "sk-1", "max_retries": 3, "engine": {"hf_token": "hf-2"}},
              "sampling": {"max_tokens": 512}, "judge": [{"password": "p"}, {"Authorization": "B"}],
              "empty": {"api_key": None}}
    assert redact(config) == {
        "sampler": {"api_key": "***", "max_retries": 3, "engine": {"hf_token": "***"}},
        "sampling": {"max_tokens": 512}, "judge": [{"password": "***"}, {"Authorization": "***"}],
        "empty": {"api_key": None},
    }
