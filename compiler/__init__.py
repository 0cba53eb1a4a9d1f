"""TVM-based compiler: torch.export -> Relax -> pattern partition -> layer IR -> TTA program."""
