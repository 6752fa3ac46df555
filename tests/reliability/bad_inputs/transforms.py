"""Transforms for `rsr load --transform` that misbehave, one way each."""


def raises(record):
    raise ValueError(f"cannot handle record {record.get('id')}")


def returns_a_list(record):
    return [record["question"]]


def returns_a_string(record):
    return "What is 2+2?"


def messages_wrong_type(record):
    return {"id": record["id"], "messages": {"role": "user", "content": record["question"]}}


def not_json_storable(record):
    return {"id": record["id"], "messages": [{"role": "user", "content": record["question"]}],
            "metadata": {"tags": {"a", "b"}}}
