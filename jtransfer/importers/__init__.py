"""Models trained elsewhere -> zoo entries: PyTorch weights (`torch_weights`), a user's own Flax
params from orbax (`flax_orbax`); `zoo_entry.write_imported` is the one function that writes
(a `zoo.Entry` of origin "imported", through `zoo.write_entry`)."""
