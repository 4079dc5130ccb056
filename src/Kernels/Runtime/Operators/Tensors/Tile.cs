namespace Quantize.Kernels.Runtime.Operators;

/// <summary>Tile: the input repeated repeats[d] times along each axis d.</summary>
[OnnxOperator("Tile", 6)]
internal sealed class Tile(long[]? fixedRepeats) : Operator
{
    public static Operator Create(OperatorBuildContext context) => context.HasInput(1)
        ? new Tile(context.ConstantInput(1) is { } repeats ? Elements.Integers(repeats, context.Label, "repeats") : null)
        : throw context.Unsupported("Tile without a repeats input");

    public override void Run(OperatorCall call)
    {
        var input = call.Input(0);
        string node = call.Context.Node;
        var repeats = fixedRepeats ?? Elements.Integers(call.Input(1), node, "repeats");
        int rank = input.Rank;
        if (repeats.Length != rank)
            throw new InvalidOperationException($"{node}: {repeats.Length} repeats for the rank-{rank} input {input}.");
        var shape = new int[rank];
        for (int d = 0; d < rank; d++)
        {
            if (repeats[d] < 0) throw new InvalidOperationException($"{node}: repeat {repeats[d]} is negative.");
            shape[d] = checked((int)(input.Shape[d] * repeats[d]));
        }
        if (shape.AsSpan().SequenceEqual(input.Shape))
        {
            call.OutputView(0, input, shape); // repeated once (or empty)
            return;
        }
        var output = call.Output(0, input.ElementType, shape);

        // Each axis d becomes two: the repeat (source stride 0) and the original axis, so one strided copy does it.
        var inputStrides = Elements.Strides(input.Shape);
        var outputStrides = Elements.Strides(shape);
        var split = new int[2 * rank];
        var srcStrides = new int[2 * rank];
        var dstStrides = new int[2 * rank];
        for (int d = 0; d < rank; d++)
        {
            split[2 * d] = (int)repeats[d];
            split[2 * d + 1] = input.Shape[d];
            srcStrides[2 * d + 1] = inputStrides[d];
            dstStrides[2 * d] = input.Shape[d] * outputStrides[d];
            dstStrides[2 * d + 1] = outputStrides[d];
        }
        var move = new Move(input, output, split, srcStrides, dstStrides);
        Elements.Dispatch(input, ref move);
    }

    private readonly struct Move(Tensor input, Tensor output, int[] shape, int[] srcStrides, int[] dstStrides) : IElementMove
    {
        public void Run<T>() =>
            StridedCopy.Run<T>(Elements.Span<T>(input), 0, srcStrides, Elements.Span<T>(output), 0, dstStrides, shape);
    }
}
