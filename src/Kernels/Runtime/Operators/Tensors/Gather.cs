namespace Quantize.Kernels.Runtime.Operators;

/// <summary>Gather: slices of the data along one axis picked by int32/int64 indices (negative ones count from the end).</summary>
[OnnxOperator("Gather", 1)]
internal sealed class Gather(long axis) : Operator
{
    public static Operator Create(OperatorBuildContext context) => new Gather(context.Int("axis", 0));

    public override void Run(OperatorCall call)
    {
        var data = call.Input(0);
        var indices = call.Input(1);
        string node = call.Context.Node;
        int a = Elements.Axis(axis, data.Rank, node);
        int dim = data.Shape[a];
        var picked = Elements.Integers(indices, node, "indices");
        var positions = new int[picked.Length];
        for (int i = 0; i < picked.Length; i++)
        {
            long index = picked[i] < 0 ? picked[i] + dim : picked[i];
            if (index < 0 || index >= dim)
                throw new InvalidOperationException($"{node}: index {picked[i]} is out of range for axis {a} of size {dim}.");
            positions[i] = (int)index;
        }

        var shape = new int[data.Rank - 1 + indices.Rank];
        data.Shape[..a].CopyTo(shape);
        indices.Shape.CopyTo(shape.AsSpan(a));
        data.Shape[(a + 1)..].CopyTo(shape.AsSpan(a + indices.Rank));
        var output = call.Output(0, data.ElementType, shape);
        var move = new Move(data, output, positions, Elements.Product(data.Shape, 0, a), dim, Elements.Product(data.Shape, a + 1, data.Rank));
        Elements.Dispatch(data, ref move);
    }

    private readonly struct Move(Tensor data, Tensor output, int[] positions, int outer, int dim, int inner) : IElementMove
    {
        public void Run<T>()
        {
            var src = Elements.Span<T>(data);
            var dst = Elements.Span<T>(output);
            int t = 0;
            for (int o = 0; o < outer; o++)
            {
                int row = o * dim;
                if (inner == 1)
                {
                    foreach (int p in positions) dst[t++] = src[row + p];
                }
                else
                {
                    foreach (int p in positions)
                    {
                        src.Slice((row + p) * inner, inner).CopyTo(dst.Slice(t, inner));
                        t += inner;
                    }
                }
            }
        }
    }
}
