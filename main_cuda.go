//go:build cuda

package main

// The CUDA build (`make cuda`) registers the "cuda" backend for --device cuda.
import _ "distill/cuda"
