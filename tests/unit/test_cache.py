from cda.cache import Cache, fingerprint


def test_fingerprint_ignores_key_order_and_sees_values():
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_json_roundtrip_and_disabled_cache(tmp_path):
    cache = Cache(tmp_path)
    key = cache.key("gen", "prompt", 0)
    assert cache.get_json(key) is None
    cache.put_json(key, {"texts": ["x"]})
    assert cache.get_json(key) == {"texts": ["x"]}
    off = Cache(tmp_path, enabled=False)
    assert off.get_json(key) is None


def test_folder_entries_only_count_when_committed(tmp_path):
    cache = Cache(tmp_path)
    key = cache.key("model", "x")
    folder = cache.staging_folder(key)
    (folder / "weights").write_text("w")
    assert cache.folder(key) is None  # a killed run leaves an uncommitted folder: a miss
    cache.commit_folder(folder)
    assert cache.folder(key) == folder
