"""cocotb testbenches of single function units (they run inside the simulator), and a runner."""
