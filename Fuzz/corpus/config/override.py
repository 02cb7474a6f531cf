depth = 2
block_pattern = ["T"] * 1 + ["M"]
max_seq_len = 32
device_batch_size = 2
total_batch_size = 64
num_iterations = -1
target_flops = 1e9
--matrix_lr=0.02 * 2
