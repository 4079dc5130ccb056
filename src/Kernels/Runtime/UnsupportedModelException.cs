namespace Quantize.Kernels.Runtime;

/// <summary>
/// A valid model that the runtime cannot run: an operator, an opset or an attribute it does not
/// implement. Raised when the model is loaded, never in the middle of a run.
/// </summary>
public sealed class UnsupportedModelException : Exception
{
    /// <summary>Creates the error for <paramref name="source"/> (the model's path or name).</summary>
    public UnsupportedModelException(string source, string problem) : base($"{source}: {problem}")
    {
        Source = source;
        Problem = problem;
    }

    /// <summary>The model the problem is in.</summary>
    public new string Source { get; }

    /// <summary>The problem alone.</summary>
    public string Problem { get; }
}
