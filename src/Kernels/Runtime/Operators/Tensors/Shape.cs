using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>Shape: the input's dimensions as int64, optionally a [start, end) range of them (opset 15).</summary>
[OnnxOperator("Shape", 1)]
internal sealed class ShapeOperator(long start, long? end) : Operator
{
    public static Operator Create(OperatorBuildContext context) => context.Opset >= 15
        ? new ShapeOperator(context.Int("start", 0), context.Attribute("end") is { } end ? end.I : null)
        : new ShapeOperator(0, null);

    public override void Run(OperatorCall call)
    {
        var dims = call.Input(0).Shape;
        int rank = dims.Length;
        int from = Clamp(start, rank), to = end is { } e ? Clamp(e, rank) : rank;
        int count = Math.Max(0, to - from);
        var values = call.Output(0, TensorElementType.Int64, [count]).AsSpan<long>();
        for (int i = 0; i < count; i++) values[i] = dims[from + i];
    }

    // Out-of-range starts and ends are clamped, as in Slice.
    private static int Clamp(long axis, int rank) => (int)Math.Clamp(axis < 0 ? axis + rank : axis, 0, rank);
}

/// <summary>Size: the input's element count as an int64 scalar.</summary>
[OnnxOperator("Size", 1)]
internal sealed class SizeOperator : Operator
{
    public static Operator Create(OperatorBuildContext context) => new SizeOperator();

    public override void Run(OperatorCall call) =>
        call.Output(0, TensorElementType.Int64, []).AsSpan<long>()[0] = call.Input(0).Length;
}
