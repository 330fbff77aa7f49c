#!/usr/bin/env python
"""Evaluate a trained run's detector: VOC07 AP per class and precision-recall curves.

PREFIX is a training run's ``--save-prefix``: ``PREFIX.json`` says which recipe
built which network for which classes with which flags, ``PREFIX.params`` holds
its latest weights (a finished or an interrupted run). By default the run's own
validation images are evaluated; ``--dataset``, ``--dataset-root``,
``--val-splits`` and ``--num-val-images`` choose others with the same classes
(a VOC-format dataset is read for the run's classes, in its label order).
Writes ``PREFIX-eval.json``, ``.png`` and ``.log`` (or ``--output``).

    python recipes/evaluate.py runs/faster_rcnn
    python recipes/evaluate.py runs/ssd --num-val-images all
    python recipes/evaluate.py runs/voc_frcnn --dataset voc --dataset-root ~/VOCdevkit --gpus 0
"""
import argparse
import os
import time

import arguments
import checkpoint
import coco_eval
import entry
import evaluation
import loaders
import parallel
import plots
import report
import train_faster_rcnn
import train_ssd

RECIPES = {'train_faster_rcnn': train_faster_rcnn, 'train_ssd': train_ssd}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add = parser.add_argument
    add('prefix', type=entry.RUN,
        help="a training run's --save-prefix (PREFIX.json and PREFIX.params), or either file")
    add('--dataset', choices=loaders.DATASETS, default=None,
        help="evaluate on this dataset's validation split (default: the run's)")
    add('--dataset-root', default=None, help="where it is (default: the run's)")
    add('--val-splits', nargs='+', type=arguments.voc_split, default=None, metavar='YEAR:NAME',
        help="--dataset voc: the image lists, VOC<YEAR>/ImageSets/Main/<NAME>.txt "
             "(default: the run's when it trained on --dataset voc, else 2007:test)")
    add('--num-val-images', default=None,
        help="the first N validation images, or 'all' (default: as many as the run evaluated)")
    add('--gpus', type=int, nargs='*', default=[],
        help='GPU ids, one image each at a time (default: none, the CPU)')
    add('--num-workers', type=int, default=0,
        help='DataLoader worker processes (default: %(default)s)')
    add('--output', default=None, type=entry.prefix_of('.json', '.png', '.log'),
        help='write OUTPUT.json, OUTPUT.png and OUTPUT.log (default: PREFIX-eval)')
    args = parser.parse_args(argv)
    arguments.check_output(parser, args.output, args.prefix)
    if args.num_val_images not in (None, 'all') and not (
            args.num_val_images.isdigit() and int(args.num_val_images) >= 1):
        parser.error("--num-val-images takes a number >= 1 or 'all', got {!r}".format(
            args.num_val_images))
    return args


def settings(run, args):
    """The run's flags (one newer than the run at its default), with the evaluation's data
    and devices.

    A VOC-format dataset is read for the run's classes, whatever the run
    trained on: the labels then follow the detector's (objects of other classes
    are skipped, as in training). ``--val-splits`` replaces the run's.
    """
    flags = report.run_flags(run, vars(RECIPES[run['recipe']].parse_args([])),
                             dataset=args.dataset, dataset_root=args.dataset_root,
                             val_splits=args.val_splits, gpus=args.gpus,
                             num_workers=args.num_workers)
    if flags['dataset'] != 'voc' and args.val_splits is not None:
        raise SystemExit('--val-splits needs --dataset voc, not {}'.format(flags['dataset']))
    if args.num_val_images is not None:
        flags['num_val_images'] = (None if args.num_val_images == 'all'
                                   else int(args.num_val_images))
    return argparse.Namespace(**flags)


def main(argv=None):
    args = parse_args(argv)
    run = report.read_run(args.prefix, RECIPES)
    flags = settings(run, args)
    _, val_set, classes = loaders.build_datasets(flags, train=False)
    report.check_run_classes(run, classes, flags.dataset)
    ctx = parallel.contexts(args.gpus)
    output = args.output or args.prefix + '-eval'
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    logger = report.setup_logger(output + '.log')
    logger.info('arguments: %s', vars(args))
    net, loader = RECIPES[run['recipe']].build_evaluation(flags, classes, ctx, val_set)
    checkpoint.load_parameters(net, args.prefix + '.params', ctx)
    coco = coco_eval.coco_metric(flags, len(val_set))
    tic = time.time()
    metric = evaluation.detection_metric(net, loader, ctx, classes, coco)
    result = {'run': args.prefix, 'recipe': run['recipe'], 'network': flags.network,
              'params': args.prefix + '.params', 'dataset': flags.dataset,
              'dataset_root': flags.dataset_root, 'images': len(val_set),
              'seconds': time.time() - tic, 'map': evaluation.average_precisions(metric),
              'recall_levels': evaluation.RECALL_LEVELS.tolist(),
              'precision': evaluation.precision_curves(metric, classes)}
    check_ground_truth(result['map'], classes, flags, logger)
    if coco is not None:
        result['coco'] = coco.get()
        logger.info('COCO %s', _fmt(result['coco']))
    entry.write_json(output + '.json', result)
    plots.plot_evaluation(output + '.png', result)
    logger.info('%s on %d %s images: VOC07 AP %s; wrote %s.{json,png,log}', args.prefix,
                len(val_set), flags.dataset, _fmt(result['map']), output)
    return result


def check_ground_truth(aps, classes, flags, logger):
    """SystemExit when the images hold no object of the run's classes; else warn of those missing.

    aps: class name -> AP, None for a class without ground truth. The images
    evaluated: a VOC-format split without any is refused when it is read
    (``loaders.build_datasets``), this catches its first ``--num-val-images``.
    """
    missing = [name for name in classes if aps.get(name) is None]
    if len(missing) == len(classes):
        raise SystemExit('the {} images of --dataset {} at {} hold no object of the run\'s '
                         'classes ({}): not the dataset it was trained for?'.format(
                             flags.num_val_images or 'validation', flags.dataset,
                             flags.dataset_root, ', '.join(classes)))
    if missing:
        logger.warning('no object of %s in these images: their AP is n/a', ', '.join(missing))


def _fmt(aps):
    return ' '.join('{}={}'.format(k, 'n/a' if v is None else '{:.4f}'.format(v))
                    for k, v in aps.items())


if __name__ == '__main__':
    entry.run_script(main, 'interrupted before the evaluation finished')
