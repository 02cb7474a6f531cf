depth = 4
num_iterations = 0
target_param_data_ratio = 20
model_tag = "x"
mamba_use_mlp = True
--n_embd=128
