package model

// Mistral: the Llama decoder with GQA; sliding_window is honoured by refusing
// contexts longer than the window (see Model.checkContext).
func init() { RegisterArch(Arch{Name: "MistralForCausalLM"}) }
