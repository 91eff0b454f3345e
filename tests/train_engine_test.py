"""The training engine's member layouts: the stacks every layout trains, "sequential" included."""

import jax
import pytest

from jtransfer.train import engine


@pytest.mark.parametrize("layout", ["vmap", "loop", "devices"])
def test_a_stacking_layout_trains_every_member_in_one_stack(layout):
  assert engine.stacks(layout, [3, 5, 8]) == [([3, 5, 8], layout)]


def test_sequential_trains_one_member_stack_per_member_in_order():
  assert engine.stacks("sequential", range(3)) == [([0], "vmap"), ([1], "vmap"), ([2], "vmap")]
  calls = []

  def train(stack, layout):
    calls.append((stack, layout))
    return 10 * stack[0]

  assert engine.run_members("sequential", [4, 7], train) == [40, 70]
  assert calls == [([4], "vmap"), ([7], "vmap")]
  calls.clear()
  assert engine.run_members("loop", [4, 7], train) == [40]
  assert calls == [([4, 7], "loop")]


def test_sequential_has_no_mesh_of_its_own():
  with pytest.raises(ValueError, match="run it through run_members"):
    engine.make_mesh("sequential", num_seeds=2, batch_size=8, devices=jax.devices())


@pytest.mark.parametrize(
  "duration, message",
  [
    ({"step": 3}, r"^d must be one of steps, epochs, examples with an amount"),
    ({"steps": 3, "epochs": 1}, r"^d must be one of steps, epochs, examples"),
    ({"epochs": 0}, r"^d.epochs must be a positive number, got 0$"),
    ({"steps": True}, r"^d.steps must be a positive number, got True$"),
  ],
)
def test_a_duration_is_one_positive_amount_in_one_unit(duration, message):
  engine.check_duration("d", {"examples": 5000})
  with pytest.raises(ValueError, match=message):
    engine.check_duration("d", duration)
