namespace Quantize.Kernels.Models;

/// <summary>
/// A model file that cannot be used: missing, unreadable, corrupt, truncated, or inconsistent.
/// The message names the file and the problem and, where there is one, what to do.
/// </summary>
public sealed class InvalidModelException : Exception
{
    /// <summary>Creates the error for <paramref name="source"/> (a path or a display name).</summary>
    public InvalidModelException(string source, string problem, Exception? innerException = null)
        : base($"{source}: {problem}", innerException)
    {
        Source = source;
        Problem = problem;
    }

    /// <summary>The file or name of the model the problem is in.</summary>
    public new string Source { get; }

    /// <summary>The problem alone, without the source.</summary>
    public string Problem { get; }
}
