namespace Quantize.Kernels.Runtime;

/// <summary>Options for <see cref="ModelSession"/>.</summary>
public sealed class SessionOptions
{
    /// <summary>Threads the kernels of one run may use; 1 runs everything on the calling thread. Default: the number of cores.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>
    /// Run quantized patterns (DequantizeLinear on constant weights, QDQ pairs, MatMulInteger) on the
    /// integer kernels. When false they are computed in float (dequantized weights). Default true.
    /// </summary>
    public bool UseIntegerKernels { get; init; } = true;

    /// <summary>
    /// TensorFlow GraphDefs only: the tensors the session's inputs are (<c>node</c> or <c>node:N</c>) instead of the placeholders,
    /// so that a graph runs from inside, past ops the runtime lacks (the keyword spotter fed at <c>Mfcc:0</c>, after its audio
    /// front end). Null (the default) means the placeholders.
    /// </summary>
    public IReadOnlyList<string>? GraphDefInputs { get; init; }

    /// <summary>Fold nodes whose inputs are all constant at load. Default true.</summary>
    public bool FoldConstants { get; init; } = true;
}
