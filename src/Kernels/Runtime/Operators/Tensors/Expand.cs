namespace Quantize.Kernels.Runtime.Operators;

/// <summary>Expand: the input broadcast (both ways, as numpy) with a shape. A view when the shape does not grow the input.</summary>
[OnnxOperator("Expand", 8)]
internal sealed class Expand(long[]? fixedShape) : Operator
{
    public static Operator Create(OperatorBuildContext context) => context.HasInput(1)
        ? new Expand(context.ConstantInput(1) is { } shape ? Elements.Integers(shape, context.Label, "the shape") : null)
        : throw context.Unsupported("Expand without a shape input");

    public override void Run(OperatorCall call)
    {
        var input = call.Input(0);
        string node = call.Context.Node;
        var given = fixedShape ?? Elements.Integers(call.Input(1), node, "the shape");
        var target = new int[given.Length];
        for (int i = 0; i < given.Length; i++)
        {
            if (given[i] < 0 || given[i] > int.MaxValue) throw new InvalidOperationException($"{node}: dimension {given[i]} in the shape.");
            target[i] = (int)given[i];
        }
        var shape = Broadcast.Shape(input.Shape, target, node);
        if (Tensor.CountElements(shape) == input.Length)
        {
            call.OutputView(0, input, shape);
            return;
        }
        var output = call.Output(0, input.ElementType, shape);
        var move = new Move(input, output, Broadcast.Strides(input.Shape, shape));
        Elements.Dispatch(input, ref move);
    }

    private readonly struct Move(Tensor input, Tensor output, int[] strides) : IElementMove
    {
        public void Run<T>() =>
            StridedCopy.Run<T>(Elements.Span<T>(input), 0, strides, Elements.Span<T>(output), 0, Elements.Strides(output.Shape), output.Shape);
    }
}
