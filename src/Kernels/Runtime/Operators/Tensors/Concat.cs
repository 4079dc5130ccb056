namespace Quantize.Kernels.Runtime.Operators;

/// <summary>Concat: the inputs joined along one axis, for every element type.</summary>
[OnnxOperator("Concat", 1)]
internal sealed class Concat(long axis) : Operator
{
    // Before opset 4 the axis was optional, with 1 as default.
    public static Operator Create(OperatorBuildContext context) =>
        new Concat(context.Opset < 4 ? context.Int("axis", 1) : context.Attribute("axis")?.I ?? throw context.Unsupported("Concat without an axis"));

    public override void Run(OperatorCall call)
    {
        var inputs = new Tensor[call.Inputs.Length];
        for (int i = 0; i < inputs.Length; i++) inputs[i] = call.Input(i);
        var first = inputs[0];
        int rank = first.Rank;
        int a = Elements.Axis(axis, rank, call.Context.Node);
        var shape = first.ShapeArray.ToArray();
        shape[a] = 0;
        foreach (var input in inputs)
        {
            bool fits = input.Rank == rank && input.ElementType == first.ElementType;
            for (int d = 0; fits && d < rank; d++) fits = d == a || input.Shape[d] == shape[d];
            if (!fits)
                throw new InvalidOperationException($"{call.Context.Node}: cannot concatenate {first} and {input} along axis {a}.");
            shape[a] += input.Shape[a];
        }
        if (inputs.Length == 1)
        {
            call.OutputView(0, first, shape);
            return;
        }
        var move = new Move(inputs, call.Output(0, first.ElementType, shape), Elements.Product(shape, 0, a));
        Elements.Dispatch(first, ref move);
    }

    private readonly struct Move(Tensor[] inputs, Tensor output, int outer) : IElementMove
    {
        public void Run<T>()
        {
            var dst = Elements.Span<T>(output);
            int row = dst.Length / Math.Max(outer, 1);
            int offset = 0;
            foreach (var input in inputs)
            {
                var src = Elements.Span<T>(input);
                int block = src.Length / Math.Max(outer, 1);
                for (int o = 0; o < outer && block > 0; o++)
                    src.Slice(o * block, block).CopyTo(dst.Slice(o * row + offset, block));
                offset += block;
            }
        }
    }
}
