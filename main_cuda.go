//go:build cuda

package main

// The CUDA build (`make cuda`) registers the "cuda" backend for --device cuda
// and the device-resident SFT step that LoRA runs on it use.
import (
	_ "distill/cuda"
	_ "distill/cuda/devnet"
)
