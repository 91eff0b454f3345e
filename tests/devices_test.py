import jax


def test_eight_fake_cpu_devices():
  assert jax.device_count() == 8
  assert {d.platform for d in jax.devices()} == {"cpu"}
