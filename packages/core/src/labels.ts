// Implemented by the label-parsing work: parse SERVICE_* labels and environment (see DESIGN §2).
export {};
