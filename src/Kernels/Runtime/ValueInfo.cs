using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime;

/// <summary>One dimension of a declared shape: a fixed size, or a symbolic name (or neither, unknown).</summary>
/// <param name="Value">The size, when fixed.</param>
/// <param name="Name">The symbolic name (ONNX <c>dim_param</c>), when there is one.</param>
public readonly record struct Dimension(long? Value, string? Name)
{
    /// <inheritdoc />
    public override string ToString() => Value?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? Name ?? "?";
}

/// <summary>A model input or output: its name, element type and declared shape (null when the rank is unknown).</summary>
/// <param name="Name">The value's name in the graph.</param>
/// <param name="ElementType">The element type.</param>
/// <param name="Shape">The declared dimensions, or null when the model does not give a rank.</param>
public sealed record ValueInfo(string Name, TensorElementType ElementType, IReadOnlyList<Dimension>? Shape)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"{Name}: {ElementType.DisplayName()} {(Shape is null ? "?" : "[" + string.Join(", ", Shape) + "]")}";
}
